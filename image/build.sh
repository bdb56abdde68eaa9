#!/usr/bin/env bash
# The kiosk SD-card image: mmdebstrap builds an arm64 Debian root with the app in a
# venv, then kiosk.provision.card assembles boot (FAT), root (ext4, mounted read-only)
# and data (ext4, the ledger) partitions without a single loop mount.
#   build.sh configs DIR              the generated system files only
#   build.sh wheel OUT                this checkout's app as a wheel in OUT/wheels (the image's first step)
#   build.sh image OUT                OUT/kiosk.img.xz, OUT/kiosk.img.bmap, OUT/kiosk.img.xz.sha256
#   build.sh pins OUT                 OUT's Python packages, pinned, into image/constraints.txt
#   build.sh refresh OUT              this checkout's app and units into OUT's built root, image again
#   build.sh boot-test OUT            boot OUT/kiosk.img in qemu and wait for the services;
#                                     then cut the power while it sells (powercut.sh, powercut.py)
#   build.sh ab-test OUT              the A/B card (LAYOUT=ab) in qemu: an update installed
#                                     from a USB stick while it sells, the switch, a broken
#                                     update rolled back, every sale kept (ab_test below)
#   build.sh boot-ratio OUT           boot to the selling screen against the same card booted
#                                     with the kiosk's units masked (after boot-test/ab-test)
#   build.sh bundle OUT               OUT/kiosk-<version>.raucb, a signed update bundle of
#                                     OUT's built root and boot files (needs rauc, mtools)
# LAYOUT=ab (environment) builds the A/B card for signed updates (kiosk/update/layout.py:
# boot selection, two boot and two root slots, data) and its bundle; the default is the
# single-root card. SIGN_KEY/SIGN_CERT sign the bundle (a key file or PKCS#11 URL and its
# certificate); KEYRING is the certificate file the image trusts (default SIGN_CERT).
# Without them a development key is made in OUT/dev-key: never ship that to a shop.
# DIR and OUT may be relative (to the folder build.sh is started from: image/ for the
# Makefile, so its default OUT=build is image/build) or absolute.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
# Debian 13 (trixie) with the kernel from trixie-backports: 7.x carries the Pi 5's
# device tree (bcm2712) and drivers for its RP1 chip (USB, Ethernet, GPIO), so one
# image boots the Pi 4 family and the Pi 5.
SUITE=trixie
MIRROR=http://deb.debian.org/debian
SOURCES=("deb $MIRROR $SUITE main non-free-firmware"
         "deb $MIRROR $SUITE-updates main non-free-firmware"
         "deb $MIRROR $SUITE-backports main non-free-firmware"
         "deb http://security.debian.org/debian-security $SUITE-security main non-free-firmware")
PACKAGES=(systemd systemd-sysv udev dbus raspi-firmware "linux-image-arm64/$SUITE-backports"
          firmware-brcm80211 python3 python3-venv ca-certificates network-manager mosquitto
          libxkbcommon0 xkb-data fonts-dejavu-core libmtdev1t64 libgl1-mesa-dri libegl1 libgles2
          libgl1 libgbm1 libusb-1.0-0 tzdata iproute2)
BUILD_ONLY=(gcc python3-dev libxkbcommon-dev linux-libc-dev)
LAYOUT=${LAYOUT:-single}
AB_PACKAGES=(rauc rauc-service mtools)  # the A/B card: RAUC and its D-Bus service; mtools
                                        # for its post-install handler
# RAUC from Debian's next release (forky), pinned to these packages alone: trixie's RAUC
# 1.13 cannot mount a verity bundle on this kernel ("Unexpected dm-verity status",
# rauc/rauc#1846, fixed in RAUC 1.15), and 1.15 needs libnl 3.11 or later. Both install
# on trixie as they are (their other dependencies are trixie's own versions).
AB_FROM_NEXT=(rauc rauc-service libnl-3-200 libnl-genl-3-200 libnl-route-3-200)
AB_NEXT_SUITE=forky

configs() {
    local dir=$1
    mkdir -p "$dir/etc/systemd/journald.conf.d" "$dir/etc/udev/rules.d" "$dir/boot/firmware" \
             "$dir/etc/default"
    cat > "$dir/etc/fstab" <<'FSTAB'
# Read-only root: a power cut cannot corrupt the system. The data partition, mounted
# read-write with a short commit interval, holds the app's ledger and, on the kiosk
# that hosts the shop broker, Mosquitto's queue; each is bind-mounted where it is used.
LABEL=rootfs     /                ext4   ro,noatime                 0 1
LABEL=BOOT       /boot/firmware   vfat   defaults,noatime,umask=077 0 2
LABEL=kioskdata  /data            ext4   defaults,noatime,commit=5  0 2
/data/kiosk      /var/lib/kiosk   none   bind,x-systemd.requires-mounts-for=/data 0 0
/data/mosquitto  /var/lib/mosquitto none bind,x-systemd.requires-mounts-for=/data 0 0
tmpfs            /tmp             tmpfs  nosuid,nodev,size=64m      0 0
tmpfs            /var/tmp         tmpfs  nosuid,nodev,size=16m      0 0
tmpfs            /var/log         tmpfs  nosuid,nodev,size=32m      0 0
tmpfs            /var/lib/NetworkManager tmpfs nosuid,nodev,size=4m 0 0
# systemd's own state (logind's linger list, the random seed, timer stamps) is
# rebuilt every boot; logind and friends fail on a read-only /var/lib/systemd.
tmpfs            /var/lib/systemd tmpfs  nosuid,nodev,size=4m,mode=0755 0 0
FSTAB
    cat > "$dir/etc/systemd/journald.conf.d/kiosk.conf" <<'JOURNAL'
# The journal stays in RAM (the root is read-only) and small.
[Journal]
Storage=volatile
RuntimeMaxUse=32M
RuntimeMaxFileSize=8M
MaxRetentionSec=7day
JOURNAL
    cat > "$dir/etc/udev/rules.d/60-kiosk-gpio.rules" <<'UDEV'
# GPIO character devices for the kiosk user (cash drawer), through the gpio group.
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
UDEV
    # raspi-firmware writes cmdline.txt from this: root by label, read-only.
    echo 'ROOTPART=LABEL=rootfs' > "$dir/etc/default/raspi-firmware"
    echo 'console=serial0,115200 console=tty1 root=LABEL=rootfs ro rootwait fsck.repair=yes quiet' \
        > "$dir/boot/firmware/cmdline.txt"
    printf '%s\n' "${PACKAGES[@]}" > "$dir/packages.txt"
    printf '%s\n' "${SOURCES[@]}" > "$dir/sources.list"
    if [ "$LAYOUT" = ab ]; then
        # check-valid-until=no: a mirror snapshot's testing Release expires within weeks
        # (a frozen build mirror's did); apt still checks its signature, and the build
        # checks the RAUC it got (rauc_at_least).
        echo "deb [check-valid-until=no] $MIRROR $AB_NEXT_SUITE main" >> "$dir/sources.list"
        mkdir -p "$dir/etc/apt/preferences.d"
        cat > "$dir/etc/apt/preferences.d/kiosk-rauc.pref" <<PREF
# Nothing from $AB_NEXT_SUITE but RAUC and the libnl it needs (see image/build.sh).
Package: *
Pin: release n=$AB_NEXT_SUITE
Pin-Priority: 100

Package: ${AB_FROM_NEXT[*]}
Pin: release n=$AB_NEXT_SUITE
Pin-Priority: 990
PREF
    fi
}

arm64_emulation() {  # arm64 programs run here through qemu-user (for chroot and mmdebstrap)
    [ -d /proc/sys/fs/binfmt_misc ] && ! mountpoint -q /proc/sys/fs/binfmt_misc \
        && mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    # Without systemd (a container, CI) nothing registers qemu's handler at boot.
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
}

app_wheel() {  # app_wheel OUT: this checkout's app as a wheel in OUT/wheels; prints its path
    # OUT is absolute (see the end of this file): pip runs in the repository's root.
    rm -rf "$1/wheels"
    # The .mo catalogs go into the wheel when Babel is at hand (the checkout's venv);
    # without them the kiosk compiles the .po files at start (kiosk/i18n.py).
    if [ -x "$REPO/.venv/bin/pybabel" ]; then
        "$REPO/.venv/bin/pybabel" compile -D kiosk -d "$REPO/kiosk/locale" >&2
    fi
    (cd "$REPO" && python3 -m pip wheel --no-deps -w "$1/wheels" . >/dev/null)
    ls "$1"/wheels/kiosk-*.whl
}

owner() {  # uid:gid of a user in the built root's own passwd
    awk -F: -v u="$2" '$1 == u { print $3 ":" $4 }' "$1/etc/passwd"
}

image() {
    local out=$1
    [ "$(id -u)" = 0 ] || { echo "build.sh: run as root (mmdebstrap, chroot)" >&2; exit 2; }
    for tool in mmdebstrap qemu-aarch64-static sfdisk mkfs.vfat mcopy mkfs.ext4 bmaptool xz; do
        command -v "$tool" >/dev/null || { echo "build.sh: $tool missing: apt-get install mmdebstrap qemu-user-static binfmt-support fdisk dosfstools mtools e2fsprogs bmap-tools xz-utils" >&2; exit 2; }
    done
    arm64_emulation
    mkdir -p "$out"
    local root="$out/rootfs" wheel packages=("${PACKAGES[@]}") ab_hooks=()
    rm -rf "$root" "$out/configs"
    configs "$out/configs"
    wheel=$(app_wheel "$out")
    if [ "$LAYOUT" = ab ]; then
        signing_key "$out"
        packages+=("${AB_PACKAGES[@]}")
        ab_hooks=(
            --customize-hook="mkdir -p \"\$1/etc/rauc\" \"\$1/usr/lib/rauc\" && cp $HERE/rauc/system.conf \"\$1/etc/rauc/\" && cp $KEYRING \"\$1/etc/rauc/keyring.pem\""
            --customize-hook="cp $HERE/rauc/kiosk-backend $HERE/rauc/kiosk-post-install $HERE/rauc/kiosk-trial-guard \"\$1/usr/lib/rauc/\""
            --customize-hook="cp $HERE/systemd/* \"\$1/etc/systemd/system/\" && cp $HERE/udev/*.rules \"\$1/etc/udev/rules.d/\""
            --customize-hook="mkdir -p \"\$1/etc/dbus-1/system.d\" && cp $HERE/rauc/kiosk-rauc-dbus.conf \"\$1/etc/dbus-1/system.d/kiosk-rauc.conf\""
            --customize-hook="chroot \"\$1\" systemctl enable kiosk-update-check.service kiosk-update-switch.timer kiosk-update-guard.timer kiosk-update-fetch.timer"
        )
    elif [ "$LAYOUT" != single ]; then
        echo "build.sh: LAYOUT=$LAYOUT: single or ab" >&2; exit 2
    fi
    # pip inside the image trusts what pip on this machine trusts (a proxy's CA, say),
    # and runs with a clean environment: this machine's PIP_* settings are not the image's.
    local ca=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || echo /etc/ssl/certs/ca-certificates.crt)}
    # apt's pins must be in place before the first package is chosen.
    mmdebstrap --architectures=arm64 --variant=minbase --components=main,non-free-firmware \
        --setup-hook="if [ -d $out/configs/etc/apt/preferences.d ]; then mkdir -p \"\$1/etc/apt/preferences.d\" && cp $out/configs/etc/apt/preferences.d/* \"\$1/etc/apt/preferences.d/\"; fi" \
        --include="$(IFS=,; echo "${packages[*]},${BUILD_ONLY[*]}")" \
        --customize-hook="cp -r $out/configs/etc/. \"\$1/etc/\"" \
        --customize-hook="mkdir -p \"\$1/opt/kiosk\" && cp $wheel \"\$1/opt/kiosk/\"" \
        --customize-hook="chroot \"\$1\" python3 -m venv --system-site-packages /opt/kiosk/venv" \
        --customize-hook="cp $ca \"\$1/tmp/build-ca.crt\" && cp $HERE/constraints.txt \"\$1/tmp/\"" \
        --customize-hook="chroot \"\$1\" env -i PATH=/usr/sbin:/usr/bin:/bin HOME=/root PIP_CERT=/tmp/build-ca.crt /opt/kiosk/venv/bin/pip install --no-cache-dir -c /tmp/constraints.txt \"/opt/kiosk/$(basename "$wheel")[pi]\"" \
        --customize-hook="rm -f \"\$1/tmp/build-ca.crt\" \"\$1/tmp/constraints.txt\"" \
        --customize-hook="chroot \"\$1\" apt-get purge -y ${BUILD_ONLY[*]}" \
        --customize-hook="chroot \"\$1\" apt-get autoremove -y" \
        --customize-hook="chroot \"\$1\" groupadd -f gpio" \
        --customize-hook="chroot \"\$1\" useradd --system --create-home --home-dir /var/lib/kiosk --groups input,gpio,lp,dialout,video,render kiosk" \
        --customize-hook="cp $REPO/systemd/*.service \"\$1/etc/systemd/system/\"" \
        --customize-hook="cp -r $REPO/systemd/mosquitto.service.d \"\$1/etc/systemd/system/\"" \
        --customize-hook="chroot \"\$1\" systemctl enable kiosk.service kiosk-firstboot.service NetworkManager.service" \
        --customize-hook="chroot \"\$1\" systemctl disable mosquitto.service" \
        --customize-hook="cp $out/configs/boot/firmware/cmdline.txt \"\$1/boot/firmware/\"" \
        "${ab_hooks[@]}" \
        "$SUITE" "$root" "$out/configs/sources.list"
    mkdir -p "$out/boot" "$root/data"
    cp -r "$root/boot/firmware/." "$out/boot/"
    # Pi 5 boards with the SoC's D0 stepping: Debian names their device tree
    # bcm2712-d-rpi-5-b.dtb, Raspberry Pi's firmware asks for bcm2712d0-rpi-5-b.dtb.
    if [ -e "$out/boot/bcm2712-d-rpi-5-b.dtb" ]; then
        cp "$out/boot/bcm2712-d-rpi-5-b.dtb" "$out/boot/bcm2712d0-rpi-5-b.dtb"
    fi
    rm -rf "$root/boot/firmware"/*
    # The data partition's folders, owned by the image's own kiosk and mosquitto users.
    rm -rf "$out/data" && mkdir -p "$out/data/kiosk" "$out/data/mosquitto"
    chown "$(owner "$root" kiosk)" "$out/data/kiosk" && chmod 0750 "$out/data/kiosk"
    chown "$(owner "$root" mosquitto)" "$out/data/mosquitto" && chmod 0700 "$out/data/mosquitto"
    if [ "$LAYOUT" = ab ]; then
        rauc_at_least "$root" 1.15
        mkdir -p "$out/data/rauc" && chmod 0700 "$out/data/rauc"
        slot_images "$out"
        assemble_ab_image "$out" 9
        bundle "$out"
    else
        assemble_image "$out" 9
    fi
}

signing_key() {  # signing_key OUT: SIGN_KEY, SIGN_CERT and KEYRING, a development key if unset
    if [ -z "${SIGN_KEY:-}" ] || [ -z "${SIGN_CERT:-}" ]; then
        echo "build.sh: no SIGN_KEY/SIGN_CERT: signing with a development key in $1/dev-key (not for a shop)" >&2
        [ -e "$1/dev-key/kiosk-dev.key.pem" ] || (cd "$REPO" && python3 -c "
from pathlib import Path
from kiosk.update.bundle import make_dev_key
make_dev_key(Path('$1/dev-key'))")
        SIGN_KEY="$1/dev-key/kiosk-dev.key.pem" SIGN_CERT="$1/dev-key/kiosk-dev.cert.pem"
    fi
    KEYRING=${KEYRING:-$SIGN_CERT}
}

app_version() { (cd "$REPO" && python3 -c 'import kiosk; print(kiosk.__version__)'); }

slot_images() {  # slot_images OUT: OUT/slot-boot.vfat and OUT/slot-root.ext4 from OUT's build
    (cd "$REPO" && python3 -c "
from pathlib import Path
from kiosk.update.layout import ext4_image, fat_image
fat_image(Path('$1/slot-boot.vfat'), Path('$1/boot'), 'KIOSKSLOT', 256)
ext4_image(Path('$1/slot-root.ext4'), Path('$1/rootfs'), 'rootfs', 2048)")
}

assemble_ab_image() {  # assemble_ab_image OUT XZ_LEVEL: the A/B card from OUT's slot images
    local out=$1
    rm -rf "$out/bootsel" && mkdir -p "$out/bootsel"
    (cd "$REPO" && python3 -c "
from pathlib import Path
from kiosk.update.layout import assemble_ab
assemble_ab(Path('$out/kiosk.img'), Path('$out/bootsel'), Path('$out/slot-boot.vfat'),
            Path('$out/slot-root.ext4'), Path('$out/data'))")
    bmaptool create -o "$out/kiosk.img.bmap" "$out/kiosk.img"
    xz -T0 "-$2" -f "$out/kiosk.img"
    (cd "$out" && sha256sum kiosk.img.xz > kiosk.img.xz.sha256)
    echo "build.sh: $out/kiosk.img.xz ready (A/B)"
}

bundle() {  # bundle OUT: a signed update bundle of OUT's slot images
    local out=$1 version build began=$SECONDS
    command -v rauc >/dev/null || { echo "build.sh: rauc missing: apt-get install rauc squashfs-tools" >&2; exit 2; }
    [ -d "$out/rootfs" ] && [ -d "$out/boot" ] || { echo "build.sh: no built root in $out: run 'LAYOUT=ab build.sh image $out' first" >&2; exit 2; }
    signing_key "$out"
    [ -e "$out/slot-root.ext4" ] || slot_images "$out"
    version=${VERSION:-$(app_version)}
    build=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
    (cd "$REPO" && python3 - "$out" "$version" "$build" "$SIGN_CERT" "$SIGN_KEY" <<'PY'
import sys
from pathlib import Path
from kiosk.update import UpdateError, bundle
out, version, build, cert, key = sys.argv[1:]
try:
    bundle.build(Path(out) / f"kiosk-{version}.raucb", version, Path(cert), Path(key),
                 Path(out) / "slot-root.ext4", Path(out) / "slot-boot.vfat", build)
except UpdateError as exc:
    sys.exit(f"build.sh: {exc}")
PY
)
    (cd "$out" && sha256sum "kiosk-$version.raucb" > "kiosk-$version.raucb.sha256")
    echo "build.sh: $out/kiosk-$version.raucb ready ($((SECONDS - began)) s)"
}

assemble_image() {  # assemble_image OUT XZ_LEVEL: the card image from OUT's boot, root, data
    local out=$1 root="$1/rootfs"
    (cd "$REPO" && python3 -c "
from pathlib import Path
from kiosk.provision.card import assemble
assemble(Path('$out/kiosk.img'), Path('$out/boot'), Path('$root'), data_dir=Path('$out/data'))")
    bmaptool create -o "$out/kiosk.img.bmap" "$out/kiosk.img"
    xz -T0 "-$2" -f "$out/kiosk.img"
    (cd "$out" && sha256sum kiosk.img.xz > kiosk.img.xz.sha256)
    echo "build.sh: $out/kiosk.img.xz ready"
}

rauc_at_least() {  # rauc_at_least ROOT VERSION: the root's RAUC can mount verity bundles
    local version
    version=$(chroot "$1" dpkg-query -W -f='${Version}' rauc)
    dpkg --compare-versions "$version" ge "$2" || { echo "build.sh: $1 has RAUC $version, which cannot mount verity bundles on this kernel (rauc/rauc#1846): build the image again" >&2; exit 2; }
}

refresh() {
    # For developers: this checkout's app and units into an image root that `image`
    # built before, then the card image again (minutes instead of half an hour).
    local out=$1 root="$1/rootfs" wheel
    [ -x "$root/opt/kiosk/venv/bin/pip" ] || { echo "build.sh: no built root in $out: run 'build.sh image $out' first" >&2; exit 2; }
    arm64_emulation
    rm -f "$root"/opt/kiosk/kiosk-*.whl
    wheel=$(app_wheel "$out")
    cp "$wheel" "$root/opt/kiosk/"
    # A dependency this checkout added comes pinned (constraints.txt) from the index, as
    # in a full build; what is installed already stays. Then the app itself, over the old.
    local ca=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || echo /etc/ssl/certs/ca-certificates.crt)}
    cp "$ca" "$root/tmp/build-ca.crt" && cp "$HERE/constraints.txt" "$root/tmp/"
    python3 - "$wheel" > "$root/tmp/requirements.txt" <<'PY'
import sys, zipfile
from email.parser import Parser
with zipfile.ZipFile(sys.argv[1]) as wheel:
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = Parser().parsestr(wheel.read(name).decode())
print("\n".join(r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r))
PY
    chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/bin HOME=/root PIP_CERT=/tmp/build-ca.crt /opt/kiosk/venv/bin/pip \
        install --no-cache-dir -c /tmp/constraints.txt -r /tmp/requirements.txt >/dev/null
    rm -f "$root/tmp/build-ca.crt" "$root/tmp/constraints.txt" "$root/tmp/requirements.txt"
    chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/bin HOME=/root /opt/kiosk/venv/bin/pip \
        install --no-cache-dir --no-deps --force-reinstall "/opt/kiosk/$(basename "$wheel")" >/dev/null
    cp "$REPO"/systemd/*.service "$root/etc/systemd/system/"
    cp -r "$REPO/systemd/mosquitto.service.d" "$root/etc/systemd/system/"
    if [ "$LAYOUT" = ab ]; then  # the update's own files too; the keyring stays the image's
        [ -e "$root/etc/rauc/system.conf" ] || { echo "build.sh: $out was not built with LAYOUT=ab" >&2; exit 2; }
        rauc_at_least "$root" 1.15
        cp "$HERE/rauc/system.conf" "$root/etc/rauc/"
        cp "$HERE/rauc/kiosk-backend" "$HERE/rauc/kiosk-post-install" "$HERE/rauc/kiosk-trial-guard" "$root/usr/lib/rauc/"
        cp "$HERE"/systemd/* "$root/etc/systemd/system/" && cp "$HERE"/udev/*.rules "$root/etc/udev/rules.d/"
        cp "$HERE/rauc/kiosk-rauc-dbus.conf" "$root/etc/dbus-1/system.d/kiosk-rauc.conf"
        rm -f "$out/slot-root.ext4" "$out/slot-boot.vfat"
        slot_images "$out"
        assemble_ab_image "$out" 1  # (no bundle: build.sh bundle OUT makes one)
    else
        assemble_image "$out" 1
    fi
}

kiosk_cli() {
    # The provisioning tool as a technician runs it: the repo's venv (./dev.sh test makes it).
    if [ -x "$REPO/.venv/bin/kiosk" ]; then "$REPO/.venv/bin/kiosk" "$@"
    elif command -v kiosk >/dev/null; then kiosk "$@"
    else echo "build.sh: the kiosk tool is missing: run ./dev.sh test once, or pip install $REPO" >&2; exit 2
    fi
}

# What a provisioned broker host's boots must show, in the order they usually come.
# systemd shortens unit names on an 80-column console, so units go by their descriptions;
# the journal is forwarded to the console too, so the app's own log is in boot.log.
COMMON=("Mounted data.mount" "Started .*- Network Manager\."
        "Started .*Mosquitto MQTT Broker" "Started .*shop-wide stock"
        "Started .*receipt printer, cash drawer")
FIRST_BOOT=("Finished .*Kiosk first-boot provisioning" "${COMMON[@]}")
NEXT_BOOT=("first-boot provisioning .*skipped" "${COMMON[@]}")
BROKEN='\[FAILED\]\|: Failed with result\|[Ww]atchdog timeout'
# After first boot the machine id is committed: a new one would mean it was not.
# (The initrd, dracut's systemd, always makes one of its own: only the real root counts.)
NEW_ID='Initializing machine ID'
SCAN=4006381333931  # what the boot test's scanner types (an EAN-13 the catalog lacks)

strip_log() { sed 's/\x1b\[[0-9;]*m//g; s/\r//g' "$1"; }

hmp() {  # hmp SOCKET COMMAND...: QEMU monitor commands, one after the other
    python3 - "$@" <<'PY'
import socket, sys, time
sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[1])
sock.settimeout(30)
def prompt():
    seen = b""
    while not seen.endswith(b"(qemu) "):
        seen += sock.recv(4096)
prompt()
for command in sys.argv[2:]:
    sock.sendall(command.encode() + b"\n")
    prompt()
    time.sleep(0.05)
PY
}

wait_for() {  # wait_for LOG PATTERN COUNT: up to 90 s for COUNT lines matching PATTERN
    local _
    for _ in $(seq 1 90); do
        [ "$(strip_log "$1" | grep -c -- "$2")" -ge "$3" ] && { echo "build.sh:   seen: $2 (x$3)"; return 0; }
        sleep 1
    done
    echo "build.sh: never saw '$2' ($3 times)" >&2
    return 1
}

scanner_check() {
    # A USB barcode scanner is a USB keyboard: plug QEMU's into the running kiosk, scan,
    # unplug it, plug it in again and scan again. Proves evdev hot-plug, the grab and
    # the decoder, and that kiosk.service's device policy lets the input group in.
    local log=$1 sock=$2 keys=() digit
    for digit in $(grep -o . <<<"$SCAN"); do keys+=("sendkey $digit"); done
    keys+=("sendkey ret")
    hmp "$sock" "device_add usb-kbd,bus=xhci.0,id=scanner"
    wait_for "$log" "scanner .* connected" 1 || return 1
    hmp "$sock" "${keys[@]}"
    wait_for "$log" "scan $SCAN: " 1 || return 1
    hmp "$sock" "device_del scanner"
    sleep 3
    hmp "$sock" "device_add usb-kbd,bus=xhci.0,id=scanner"
    wait_for "$log" "scanner .* connected" 2 || return 1
    hmp "$sock" "${keys[@]}"
    wait_for "$log" "scan $SCAN: " 2
}

kept_machine_id() {  # kept_machine_id LOG: the real root made no new machine id
    local real_root
    real_root=$(strip_log "$1" | sed -n '/Switching root/,$p')
    [ -n "$real_root" ] || { echo "build.sh: the initrd never switched to the real root" >&2; return 1; }
    if grep -q -- "$NEW_ID" <<<"$real_root"; then
        echo "build.sh: a new machine id after a power cut: first boot did not commit it" >&2
        return 1
    fi
}

# What boot_once adds for one boot: kernel arguments, options of the user network (the
# guest reaches nothing but what these forward); the running qemu's pid, and whether the
# CHECK function cut the power itself (CUT_AT: when).
EXTRA_APPEND="" NETDEV_EXTRA="" QEMU_PID="" CUT_AT=""

# The emulated machine every boot test runs: a Pi-like arm64 board with its disk, GPU
# (the app draws through KMS/DRM), USB controller and a network with no way out. One
# definition, so the boot test, the A/B test and the boot ratio boot the same machine.
QEMU_MACHINE=(-M virt -cpu cortex-a72 -smp 2 -m 1024 -nographic)
# (after the disk, in this order: the PCI slots, and so the interface names, stay put)
QEMU_DEVICES=(-device virtio-gpu-pci -device qemu-xhci,id=xhci -device virtio-net-pci,netdev=n0,romfile=)

boot_once() {
    # boot_once IMAGE LOG KERNEL INITRD CHECK STEP...: boot until every step is seen,
    # run CHECK (a function given LOG and the monitor socket), wait 20 s more for a late
    # crash or watchdog, fail on a line matching BROKEN; then cut the power.
    local image=$1 log=$2 kernel=$3 initrd=$4 check=$5
    shift 5
    local sock="$log.monitor"
    local steps=("$@") began=$SECONDS verdict="" text step
    declare -A seen=()
    CUT_AT=""
    qemu-system-aarch64 "${QEMU_MACHINE[@]}" \
        -kernel "$kernel" -initrd "$initrd" \
        -append "console=ttyAMA0 root=LABEL=rootfs ro rootwait systemd.journald.forward_to_console=1${EXTRA_APPEND:+ $EXTRA_APPEND}" \
        -drive "file=$image,format=raw,if=virtio" "${QEMU_DEVICES[@]}" -monitor "unix:$sock,server=on,wait=off" \
        -netdev "user,id=n0,restrict=on$NETDEV_EXTRA" > "$log" 2>&1 &
    local qemu=$!
    QEMU_PID=$qemu
    while [ -z "$verdict" ] && [ $((SECONDS - began)) -lt 1440 ]; do
        sleep 5
        text=$(strip_log "$log")
        for step in "${steps[@]}"; do
            if [ -z "${seen[$step]:-}" ] && grep -q -- "$step" <<<"$text"; then
                seen[$step]=1; echo "build.sh:   $((SECONDS - began)) s: $step"
            fi
        done
        if grep -q -- "$BROKEN" <<<"$text"; then verdict=failed
        elif [ ${#seen[@]} = ${#steps[@]} ]; then verdict=ok
        fi
        kill -0 "$qemu" 2>/dev/null || verdict=${verdict:-qemu-exited}
    done
    if [ "$verdict" = ok ]; then
        "$check" "$log" "$sock" || verdict="$check failed"
        [ -n "$CUT_AT" ] || sleep 20
    fi
    kill -9 "$qemu" 2>/dev/null || true  # a power cut, not a shutdown
    wait "$qemu" 2>/dev/null || true
    text=$(strip_log "$log")
    if [ "$verdict" != ok ] || grep -q -- "$BROKEN" <<<"$text"; then
        grep -n -- "$BROKEN\|kiosk\[" <<<"$text" | tail -20 >&2
        echo "build.sh: boot test failed (${verdict:-timed out}); log: $log" >&2
        return 1
    fi
}

# The power cut while selling: the second boot sells (powercut.sh sell, started from the
# kernel command line) and publishes through a forward to a broker on this machine; the
# power goes after POWERCUT_SALES sales; the third boot reports its ledger (powercut.sh
# check). Every sale reported paid must be there, the ledger must verify, and the broker
# here must publish the kiosk's last will once its keepalive runs out.
POWERCUT_SALES=${POWERCUT_SALES:-30}
POWERCUT_CUT="" POWERCUT_PORT="" POWERCUT_KEEPALIVE=30 POWERCUT_WORK=""

powercut_run() {  # powercut_run MODE: the kernel arguments that run powercut.sh MODE
    # systemd.run= alone would boot into kernel-command-line.target instead of the
    # kiosk's usual target: name that target, and pull the command's unit in beside it.
    echo "systemd.unit=$1 systemd.wants=kernel-command-line.service" \
         "systemd.run_success_action=none systemd.run_failure_action=none" \
         "systemd.run=\"/bin/sh /boot/firmware/powercut/powercut.sh $2\""
}

default_target() {  # default_target ROOT: the unit a normal boot of ROOT starts
    local link
    for link in "$1/etc/systemd/system/default.target" "$1/usr/lib/systemd/system/default.target"; do
        [ -L "$link" ] && { basename "$(readlink "$link")"; return; }
    done
    echo graphical.target
}

powercut_broker() {  # powercut_broker WORK: Mosquitto on 127.0.0.1 and a subscriber logging it
    local work=$1
    POWERCUT_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat > "$work/mosquitto.conf" <<CONF
listener $POWERCUT_PORT 127.0.0.1
allow_anonymous true
persistence false
user root
log_dest file $work/mosquitto.log
CONF
    mosquitto -c "$work/mosquitto.conf" 2>> "$work/mosquitto.err" & POWERCUT_PIDS+=($!)
    "$REPO/.venv/bin/python" "$HERE/powercut.py" subscribe "$POWERCUT_PORT" "$work/mqtt.log" \
        2>> "$work/subscriber.err" & POWERCUT_PIDS+=($!)
    # The guest reaches this broker, and nothing else, at 10.0.2.100:1883: one bridge
    # process per connection (QEMU's option syntax doubles commas in the command).
    local bridge="$(command -v python3) $HERE/powercut.py bridge $POWERCUT_PORT"
    NETDEV_EXTRA=",guestfwd=tcp:10.0.2.100:1883-cmd:${bridge//,/,,}"
}

sell_and_cut() {  # boot_once's check for the selling boot: cut the power while it sells
    local log=$1 sold=0 i waited
    kept_machine_id "$log" || return 1
    for i in $(seq 1 600); do
        sold=$(strip_log "$log" | grep -c '^PAID .* #$' || true)
        [ "$sold" -ge "$POWERCUT_SALES" ] && break
        sleep 1
    done
    [ "$sold" -ge "$POWERCUT_SALES" ] || { echo "build.sh: only $sold sale(s) paid in 10 minutes" >&2; return 1; }
    grep -q '/status .*"online":true' "$POWERCUT_WORK/mqtt.log" \
        || { echo "build.sh: the host's broker never saw the kiosk online" >&2; return 1; }
    sleep "0.$((RANDOM % 10))"  # anywhere in a sale, not just after one
    # The power cut: the guest stops between two instructions; its disk keeps what it
    # had written, its TCP connection stays open and silent (nothing sends a FIN).
    kill -STOP "$QEMU_PID"
    POWERCUT_CUT=$(date +%s.%N) CUT_AT=$POWERCUT_CUT
    sold=$(strip_log "$log" | grep -c '^PAID .* #$' || true)
    echo "build.sh:   power cut after $sold sale(s) reported paid"
    for waited in $(seq 1 $((POWERCUT_KEEPALIVE * 2 + 15))); do
        awk -v cut="$POWERCUT_CUT" '$1 >= cut && /\/status .*"online":false/' "$POWERCUT_WORK/mqtt.log" | grep -q . && break
        sleep 1
    done
    echo "build.sh:   the host's broker: kiosk offline after ~${waited} s (keepalive $POWERCUT_KEEPALIVE s)"
    "$REPO/.venv/bin/python" "$HERE/powercut.py" retained "$POWERCUT_PORT" \
        "shop/+/kiosk/till-01/status" > "$POWERCUT_WORK/retained.json" || return 1
    grep -q '"online":false' "$POWERCUT_WORK/retained.json" \
        || { echo "build.sh: the retained status is not offline: $(cat "$POWERCUT_WORK/retained.json")" >&2; return 1; }
}

ledger_after_cut() {  # boot_once's check for the boot after: what the ledger kept
    "$REPO/.venv/bin/python" "$HERE/powercut.py" verdict "$POWERCUT_WORK/sell.log" "$1" \
        "$POWERCUT_WORK/mqtt.log" "$POWERCUT_CUT" "$POWERCUT_KEEPALIVE"
}

power_cut_while_selling() {  # power_cut_while_selling IMAGE OUT WORK KERNEL INITRD
    local image=$1 out=$2 work=$3 kernel=$4 initrd=$5 offset target
    # The selling session, on the boot partition (the root is read-only).
    mkdir -p "$work/powercut" && cp "$HERE/powercut.sh" "$work/powercut/"
    offset=$("$REPO/.venv/bin/python" -c "import sys; from pathlib import Path
from kiosk.provision.card import boot_partition
print(boot_partition(Path(sys.argv[1])).start)" "$image")
    MTOOLS_SKIP_CHECK=1 mcopy -s -o -i "$image@@$offset" "$work/powercut" ::/
    POWERCUT_KEEPALIVE=$("$REPO/.venv/bin/python" -c "import sys; from pathlib import Path
from kiosk.config import load_file
print(load_file(Path(sys.argv[1])).mqtt.keepalive)" "$work/bundles/till-01/kiosk.toml")
    POWERCUT_WORK=$work POWERCUT_PIDS=()
    trap 'kill "${POWERCUT_PIDS[@]}" 2>/dev/null || true' EXIT
    target=$(default_target "$out/rootfs")
    powercut_broker "$work"
    EXTRA_APPEND=$(powercut_run "$target" sell)
    boot_once "$image" "$out/boot2.log" "$kernel" "$initrd" sell_and_cut \
        "${NEXT_BOOT[@]}" "^POWERCUT selling" || exit 1
    cp "$out/boot2.log" "$work/sell.log"
    echo "build.sh: power cut while selling; next boot, the ledger (log: $out/boot3.log)"
    EXTRA_APPEND=$(powercut_run "$target" check) NETDEV_EXTRA=""
    boot_once "$image" "$out/boot3.log" "$kernel" "$initrd" ledger_after_cut \
        "${NEXT_BOOT[@]}" "^VERIFY \(ok\|failed\)$" || exit 1
    EXTRA_APPEND=""
}

boot_test() {
    # Provision the image for the example shop's till-01 (it hosts the broker and the
    # controller) as in the field and boot it in qemu with a virtio GPU (the app draws
    # through KMS/DRM, as on a Pi). First boot must install the bundle and start the
    # broker, the controller and the app (Started = READY=1, the app's once its selling
    # screen is drawn) with no unit failed; then the power is cut, and the next boot must come
    # up the same way without first boot and with the same machine id.
    local out=$1 image="$1/kiosk-test.img" work="$1/boot-test" kernel initrd
    command -v qemu-system-aarch64 >/dev/null || { echo "build.sh: apt-get install qemu-system-arm" >&2; exit 2; }
    command -v mosquitto >/dev/null || { echo "build.sh: apt-get install mosquitto (the power cut test's broker)" >&2; exit 2; }
    rm -rf "$work" && mkdir -p "$work"
    xz -dkc "$out/kiosk.img.xz" > "$image"
    # The example shop, but till-01's scanner is the USB keyboard that QEMU plugs in.
    sed 's/^till-01,\([^,]*\),\([^,]*\),[^,]*,/till-01,\1,\2,QEMU USB Keyboard,/' \
        "$REPO/provisioning/devices.example.csv" > "$work/devices.csv"
    kiosk_cli provision build "$REPO/provisioning/site.example.toml" "$work/devices.csv" \
        --out "$work/bundles" --broker-dir "$work/broker" >/dev/null
    kiosk_cli provision write "$work/bundles/till-01" "$image"
    kernel=$(ls "$out"/rootfs/boot/vmlinuz-* | head -1)
    initrd=$(ls "$out"/rootfs/boot/initrd.img-* | head -1)
    echo "build.sh: first boot (log: $out/boot.log)"
    boot_once "$image" "$out/boot.log" "$kernel" "$initrd" scanner_check \
        "${FIRST_BOOT[@]}" || exit 1
    echo "build.sh: power cut; next boot, selling until the power is cut (log: $out/boot2.log)"
    power_cut_while_selling "$image" "$out" "$work" "$kernel" "$initrd"
    echo "build.sh: boot test passed: provisioned on first boot, up again after a power cut," \
         "every sale reported paid before a power cut while selling was in the ledger after" \
         "it, and the broker published the kiosk's last will"
}

# The A/B boot test (LAYOUT=ab): image/abboot.py plays the Pi firmware between boots
# (qemu runs with -no-reboot: a reboot ends it, and abboot.py says which slot, kernel,
# initrd and command line come next, honouring a tryboot request); image/abtest.sh on the
# boot selection partition reports each boot and sells. Version N is the built image;
# N+1 is a bundle of the same root with a higher version, N+2 a root whose app exits at
# start. Each update comes on a USB stick (a FAT image hot-plugged as qemu usb-storage),
# installed by the udev rule's kiosk-update-usb@ unit while the kiosk sells.
AB_SALES_LOGS=()
AB_USB_FAILED='Failed to start .*Kiosk update from USB\|kiosk-update-usb@.*Failed with result'

ab_boot() {  # ab_boot CARD LOG MODE WANT_SLOT WANT_TRIAL: start the slot abboot.py chooses
    local card=$1 log=$2 mode=$3 SLOT PART TRIAL KERNEL INITRD APPEND
    eval "$(python3 "$HERE/abboot.py" choose "$card" "$AB_WORK/firmware")"
    echo "build.sh: firmware: slot $SLOT (partition $PART), trial $TRIAL; log $log"
    if [ "$SLOT" != "$4" ] || [ "$TRIAL" != "$5" ]; then
        echo "build.sh: expected slot $4 with trial $5, the firmware chose slot $SLOT with trial $TRIAL" >&2
        return 1
    fi
    AB_SALES_LOGS+=("$log")
    qemu-system-aarch64 "${QEMU_MACHINE[@]}" -no-reboot \
        -kernel "$KERNEL" -initrd "$INITRD" \
        -append "$APPEND systemd.journald.forward_to_console=1 systemd.unit=$AB_TARGET systemd.wants=kernel-command-line.service systemd.run_success_action=none systemd.run_failure_action=none systemd.run=\"/bin/sh /boot/firmware/abtest/abtest.sh $mode\"" \
        -drive "file=$card,format=raw,if=virtio" "${QEMU_DEVICES[@]}" -monitor "unix:$log.monitor,server=on,wait=off" \
        -netdev "user,id=n0,restrict=on" > "$log" 2>&1 &
    QEMU_PID=$!
    AB_BOOTED=$SECONDS
}

ab_seen() {  # ab_seen LOG PATTERN TIMEOUT [FAIL]: wait for PATTERN; fails at the timeout,
    # if qemu ends or on a line matching FAIL
    local began=$SECONDS
    while [ $((SECONDS - began)) -lt "$3" ]; do
        if strip_log "$1" | grep -q -- "$2"; then
            echo "build.sh:   $((SECONDS - AB_BOOTED)) s after boot: $(strip_log "$1" | grep -- "$2" | head -1 | cut -c1-150)"
            return 0
        fi
        if [ -n "${4:-}" ] && strip_log "$1" | grep -q -- "$4"; then
            strip_log "$1" | grep -- "$4\|kiosk-update\|kiosk\[\|rauc" | tail -15 >&2
            echo "build.sh: saw '$4' instead of '$2' (log: $1)" >&2
            return 1
        fi
        kill -0 "$QEMU_PID" 2>/dev/null || { echo "build.sh: qemu ended before '$2'" >&2; return 1; }
        sleep 2
    done
    echo "build.sh: never saw '$2' in $3 s (log: $1)" >&2
    return 1
}

ab_reboot() {  # ab_reboot TIMEOUT: wait for the guest to reboot (qemu -no-reboot ends)
    local began=$SECONDS
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        [ $((SECONDS - began)) -lt "$1" ] || { echo "build.sh: no reboot within $1 s" >&2; return 1; }
        sleep 1
    done
    wait "$QEMU_PID" 2>/dev/null || true
    echo "build.sh:   rebooted $((SECONDS - AB_BOOTED)) s after boot"
}

ab_stick() {  # ab_stick BUNDLE STICK: a FAT image holding BUNDLE
    local size
    size=$(( $(stat -c %s "$1") / 1024 + 65536 ))
    rm -f "$2" && mkfs.vfat -F 32 -n UPDATE -C "$2" "$size" >/dev/null
    MTOOLS_SKIP_CHECK=1 mcopy -i "$2" "$1" ::/
}

ab_install() {  # ab_install LOG STICK ID VERSION SLOT: plug the stick, wait for the install
    local log=$1 began line
    echo "build.sh: plugging in the USB stick with $4"
    began=$SECONDS
    hmp "$log.monitor" "drive_add 0 if=none,id=$3,file=$2,format=raw,readonly=on" \
        "device_add usb-storage,bus=xhci.0,drive=$3,id=$3"
    ab_seen "$log" "ABTEST installing" 300 "$AB_USB_FAILED" || return 1
    ab_seen "$log" "kiosk-update: $4 installed into slot $5" 3600 "$AB_USB_FAILED" || return 1
    AB_INSTALL_S=$((SECONDS - began))
    line=$(strip_log "$log" | grep -o "kiosk-update: $4 installed into slot $5 in [0-9.]* s" | head -1)
    AB_RAUC_S=$(sed 's/.* in \([0-9.]*\) s$/\1/' <<<"$line")
    AB_SWITCH_FROM=$SECONDS
    # abtest.sh says the install finished when it sees the unit gone (it polls between
    # sales, which take tens of seconds emulated); a quiet moment may come first, and
    # the reboot ends qemu: the switch then counts from here.
    local waited=$SECONDS
    while ! strip_log "$log" | grep -q "ABTEST install finished" && kill -0 "$QEMU_PID" 2>/dev/null; do
        [ $((SECONDS - waited)) -lt 300 ] || { echo "build.sh: never saw 'ABTEST install finished' (log: $log)" >&2; return 1; }
        sleep 2
    done
    kill -0 "$QEMU_PID" 2>/dev/null && hmp "$log.monitor" "device_del $3"
    echo "build.sh:   install of $4: ${AB_INSTALL_S} s from plugging in the stick (rauc install ${AB_RAUC_S} s of it)," \
         "$(strip_log "$log" | sed -n '/ABTEST installing/,/ABTEST install finished/p' | grep -c '^PAID .* #$') sale(s) during it"
}

ab_paid() {  # every receipt reported paid in the A/B test's boots
    local log
    for log in "${AB_SALES_LOGS[@]}"; do strip_log "$log"; done | sed -n 's/^PAID \(\S*\) #$/\1/p'
}

ab_bundles() {  # N+1: the built root, a higher version; N+2: a root whose app exits at start
    local out=$1 work=$2 broken="$2/broken-root.ext4" cert key
    VERSION=$AB_N1 bundle "$out" >/dev/null
    mv "$out/kiosk-$AB_N1.raucb" "$work/" && rm -f "$out/kiosk-$AB_N1.raucb.sha256"
    cp --sparse=always "$out/slot-root.ext4" "$broken"
    cat > "$work/kiosk.service" <<'UNIT'
# A deliberately broken version for the A/B boot test: the app exits at start.
[Unit]
Description=Retail kiosk app (checkout, scanner, receipt printer, cash drawer)
StartLimitIntervalSec=0

[Service]
Type=notify
ExecStart=/bin/sh -c 'echo "kiosk: this build is broken on purpose (A/B boot test)"; exit 3'
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
UNIT
    debugfs -w -f - "$broken" >/dev/null 2>"$work/debugfs.err" <<CMDS
cd /etc/systemd/system
rm kiosk.service
write $work/kiosk.service kiosk.service
sif kiosk.service mode 0100644
CMDS
    debugfs -R "cat /etc/systemd/system/kiosk.service" "$broken" 2>/dev/null | grep -q "broken on purpose" \
        || { echo "build.sh: could not break the N+2 root: $(cat "$work/debugfs.err")" >&2; return 1; }
    signing_key "$out"
    cert=$SIGN_CERT key=$SIGN_KEY
    (cd "$REPO" && python3 - "$work/kiosk-$AB_N2.raucb" "$AB_N2" "$cert" "$key" "$broken" "$out/slot-boot.vfat" <<'PY'
import sys
from pathlib import Path
from kiosk.update import UpdateError, bundle
out, version, cert, key, root, boot = sys.argv[1:]
try:
    bundle.build(Path(out), version, Path(cert), Path(key), Path(root), Path(boot), "ab-test-broken")
except UpdateError as exc:
    sys.exit(f"build.sh: {exc}")
PY
)
    rm -f "$broken"
    ab_stick "$work/kiosk-$AB_N1.raucb" "$work/stick1.img"
    ab_stick "$work/kiosk-$AB_N2.raucb" "$work/stick2.img"
}

ab_test() {
    local out=$1 card="$1/kiosk-ab-test.img" began=$SECONDS offset t0 status paid ledger missing
    AB_WORK="$1/ab-test"
    command -v qemu-system-aarch64 >/dev/null || { echo "build.sh: apt-get install qemu-system-arm" >&2; exit 2; }
    command -v debugfs >/dev/null || { echo "build.sh: apt-get install e2fsprogs" >&2; exit 2; }
    [ -e "$out/slot-root.ext4" ] && [ -e "$out/kiosk.img.xz" ] \
        || { echo "build.sh: no A/B build in $out: run 'LAYOUT=ab build.sh image $out' first" >&2; exit 2; }
    AB_N=$(app_version)
    AB_N1=${AB_N1:-$AB_N.1} AB_N2=${AB_N2:-$AB_N.2}
    rm -rf "$AB_WORK" && mkdir -p "$AB_WORK/abtest"
    echo "build.sh: bundles $AB_N1 (the built root) and $AB_N2 (its app exits at start)"
    t0=$SECONDS
    ab_bundles "$out" "$AB_WORK" || exit 1
    echo "build.sh:   bundles and sticks in $((SECONDS - t0)) s"
    xz -dkc "$out/kiosk.img.xz" > "$card"
    # The example shop's till-01 (broker, controller, app), its scanner QEMU's keyboard;
    # shorter update waits than a shop's so the test takes minutes, not an hour.
    sed 's/^till-01,\([^,]*\),\([^,]*\),[^,]*,/till-01,\1,\2,QEMU USB Keyboard,/' \
        "$REPO/provisioning/devices.example.csv" > "$AB_WORK/devices.csv"
    { cat "$REPO/provisioning/site.example.toml"
      printf '\n[defaults.update]\nidle_minutes = %s\nstable_seconds = %s\nready_timeout = %s\n' \
          "${AB_IDLE_MINUTES:-1}" "${AB_STABLE_SECONDS:-60}" "${AB_READY_TIMEOUT:-240}"
    } > "$AB_WORK/site.toml"
    kiosk_cli provision build "$AB_WORK/site.toml" "$AB_WORK/devices.csv" \
        --out "$AB_WORK/bundles" --broker-dir "$AB_WORK/broker" >/dev/null
    kiosk_cli provision write "$AB_WORK/bundles/till-01" "$card"
    cp "$HERE/abtest.sh" "$HERE/powercut.sh" "$AB_WORK/abtest/"
    offset=$("$REPO/.venv/bin/python" -c "import sys; from pathlib import Path
from kiosk.provision.card import boot_partition
print(boot_partition(Path(sys.argv[1])).start)" "$card")
    MTOOLS_SKIP_CHECK=1 mcopy -s -o -i "$card@@$offset" "$AB_WORK/abtest" ::/
    AB_TARGET=$(default_target "$out/rootfs")
    # (set -e holds in the trap too: a kill of a qemu that already ended must not fail it)
    trap 'if [ -n "${QEMU_PID:-}" ]; then kill -9 "$QEMU_PID" 2>/dev/null || true; fi' EXIT

    echo "build.sh: 1. version $AB_N on slot A (first boot); $AB_N1 from a USB stick while it sells"
    ab_boot "$card" "$out/ab1.log" boot A 0 || exit 1
    ab_seen "$out/ab1.log" "Started .*receipt printer, cash drawer" 900 || exit 1
    ab_seen "$out/ab1.log" "ABTEST selling ready" 600 || exit 1
    ab_install "$out/ab1.log" "$AB_WORK/stick1.img" stick1 "$AB_N1" B || exit 1
    AB_INSTALL1=$AB_INSTALL_S AB_RAUC1=$AB_RAUC_S
    ab_reboot 1500 || exit 1  # the quiet moment: no sale for [update] idle_minutes
    AB_WAIT1=$((SECONDS - AB_SWITCH_FROM)) t0=$SECONDS

    echo "build.sh: 2. the switch: $AB_N1 on trial in slot B"
    ab_boot "$card" "$out/ab2.log" boot B 1 || exit 1
    ab_seen "$out/ab2.log" "Started .*receipt printer, cash drawer" 900 || exit 1
    AB_READY2=$((SECONDS - t0))
    ab_seen "$out/ab2.log" "kiosk-update: $AB_N1 is good" 900 "FAILED, rolled back" || exit 1
    AB_GOOD2=$((SECONDS - t0))
    ab_seen "$out/ab2.log" "ABTEST status .*\"result\": \"ok\"" 300 || exit 1
    ab_seen "$out/ab2.log" "ABTEST selling ready" 600 || exit 1
    echo "build.sh: 3. $AB_N2 (broken) from a USB stick while $AB_N1 sells"
    ab_install "$out/ab2.log" "$AB_WORK/stick2.img" stick2 "$AB_N2" A || exit 1
    AB_INSTALL2=$AB_INSTALL_S AB_RAUC2=$AB_RAUC_S
    ab_reboot 1500 || exit 1  # the quiet moment: no sale for [update] idle_minutes
    AB_WAIT2=$((SECONDS - AB_SWITCH_FROM)) t0=$SECONDS

    echo "build.sh: 4. $AB_N2 on trial in slot A: it never sells, so back to $AB_N1"
    ab_boot "$card" "$out/ab3.log" boot A 1 || exit 1
    ab_seen "$out/ab3.log" "kiosk-update: update to $AB_N2 FAILED, rolled back" 1200 || exit 1
    AB_BAD3=$((SECONDS - t0))
    ab_reboot 300 || exit 1

    echo "build.sh: 5. back on $AB_N1 in slot B: status, RAUC, the ledger"
    ab_boot "$card" "$out/ab4.log" final B 0 || exit 1
    ab_seen "$out/ab4.log" "Started .*receipt printer, cash drawer" 900 || exit 1
    AB_BACK4=$((SECONDS - t0))
    ab_seen "$out/ab4.log" "^VERIFY \(ok\|failed\)$" 900 || exit 1
    kill -9 "$QEMU_PID" 2>/dev/null; wait "$QEMU_PID" 2>/dev/null || true

    status=$(strip_log "$out/ab4.log" | grep '^ABTEST status ' | tail -1)
    paid=$(ab_paid | sort)
    ledger=$(strip_log "$out/ab4.log" | sed -n 's/^LEDGER \(\S*\) #$/\1/p' | sort)
    missing=$(comm -23 <(echo "$paid") <(echo "$ledger") | grep -c . || true)
    echo "build.sh: final status: ${status#ABTEST status }"
    strip_log "$out/ab4.log" | grep '^ABTEST rauc' | sed 's/^/build.sh:   /'
    echo "build.sh: $(grep -c . <<<"$paid") sale(s) reported paid over the four boots," \
         "$(grep -c . <<<"$ledger") in the ledger, $missing missing; $(strip_log "$out/ab4.log" | grep '^VERIFY \(ok\|failed\)$')"
    echo "build.sh: times: install $AB_N1 ${AB_INSTALL1} s (rauc ${AB_RAUC1} s), to the quiet-moment reboot ${AB_WAIT1} s;" \
         "switch: selling screen ${AB_READY2} s, kept (good) ${AB_GOOD2} s after the reboot;" \
         "install $AB_N2 ${AB_INSTALL2} s (rauc ${AB_RAUC2} s), reboot ${AB_WAIT2} s later;" \
         "rollback decided ${AB_BAD3} s after that reboot, $AB_N1 selling again ${AB_BACK4} s after it; all in $(( (SECONDS - began) / 60 )) min"
    [ "$missing" = 0 ] && [ -n "$paid" ] || { echo "build.sh: A/B test failed: sales missing from the ledger" >&2; exit 1; }
    strip_log "$out/ab4.log" | grep -q '^VERIFY ok$' || { echo "build.sh: A/B test failed: ledger verify" >&2; exit 1; }
    grep -q "\"result\": \"rolled_back\"" <<<"$status" && grep -q "\"version\": \"$AB_N2\"" <<<"$status" \
        || { echo "build.sh: A/B test failed: the status does not report $AB_N2 rolled back" >&2; exit 1; }
    echo "build.sh: A/B test passed: $AB_N -> $AB_N1 installed while selling and kept; $AB_N2 rolled back to $AB_N1 by itself; every sale in the verified ledger"
}

# Boot to the selling screen against the same card booted to multi-user with the
# kiosk's own units masked (issue 19's boot ratio): the card a boot test left (provisioned,
# past first boot), the same qemu, guest clock stamps (the kernel's, on the console).
RATIO_GOAL=1.3

guest_seconds() {  # guest_seconds LOG PATTERN: the kernel timestamp of PATTERN's first line
    strip_log "$1" | grep -- "$2" | head -1 | sed -n 's/^\[ *\([0-9]*\.[0-9]*\)\].*/\1/p'
}

ratio_boot() {  # ratio_boot CARD LOG APPEND PATTERN: boot until PATTERN (<= 1200 s), power off
    local began=$SECONDS
    qemu-system-aarch64 "${QEMU_MACHINE[@]}" -no-reboot \
        -kernel "$RATIO_KERNEL" -initrd "$RATIO_INITRD" -append "$3 systemd.journald.forward_to_console=1" \
        -drive "file=$1,format=raw,if=virtio" "${QEMU_DEVICES[@]}" -netdev "user,id=n0,restrict=on" > "$2" 2>&1 &
    QEMU_PID=$!
    while ! strip_log "$2" | grep -q -- "$4"; do
        if [ $((SECONDS - began)) -ge 1200 ] || ! kill -0 "$QEMU_PID" 2>/dev/null; then
            kill -9 "$QEMU_PID" 2>/dev/null; echo "build.sh: never saw '$4' (log: $2)" >&2; return 1
        fi
        sleep 2
    done
    sleep 5  # the line's timestamp is what counts; a few seconds more for the log
    kill -9 "$QEMU_PID" 2>/dev/null; wait "$QEMU_PID" 2>/dev/null || true
}

boot_ratio() {
    local out=$1 card append masks="" unit selling plain switch_selling switch_plain
    command -v qemu-system-aarch64 >/dev/null || { echo "build.sh: apt-get install qemu-system-arm" >&2; exit 2; }
    if [ "$LAYOUT" = ab ]; then
        card="$out/kiosk-ab-test.img"
        [ -e "$card" ] || { echo "build.sh: no $card: run 'LAYOUT=ab build.sh ab-test $out' first" >&2; exit 2; }
        local SLOT PART TRIAL KERNEL INITRD APPEND
        mkdir -p "$out/ratio"
        eval "$(python3 "$HERE/abboot.py" choose "$card" "$out/ratio")"
        RATIO_KERNEL=$KERNEL RATIO_INITRD=$INITRD append=$APPEND
    else
        card="$out/kiosk-test.img"
        [ -e "$card" ] || { echo "build.sh: no $card: run 'build.sh boot-test $out' first" >&2; exit 2; }
        RATIO_KERNEL=$(ls "$out"/rootfs/boot/vmlinuz-* | head -1)
        RATIO_INITRD=$(ls "$out"/rootfs/boot/initrd.img-* | head -1)
        append="console=ttyAMA0 root=LABEL=rootfs ro rootwait"
    fi
    # The kiosk's own units: the app, the controller, first boot, the updates', and the
    # shop broker (Debian's mosquitto, which provisioning turns on for the broker host).
    for unit in "$REPO"/systemd/*.service "$HERE"/systemd/*.service "$HERE"/systemd/*.timer; do
        case $unit in *@.service) continue ;; esac
        masks+=" systemd.mask=$(basename "$unit")"
    done
    masks+=" systemd.mask=mosquitto.service"
    # (set -e holds in the trap too: a kill of a qemu that already ended must not fail it)
    trap 'if [ -n "${QEMU_PID:-}" ]; then kill -9 "$QEMU_PID" 2>/dev/null || true; fi' EXIT
    echo "build.sh: boot to the selling screen (log $out/ratio-selling.log)"
    ratio_boot "$card" "$out/ratio-selling.log" "$append" "Started .*receipt printer, cash drawer" || exit 1
    echo "build.sh: the same card, the kiosk's units masked, to multi-user (log $out/ratio-plain.log)"
    ratio_boot "$card" "$out/ratio-plain.log" "$append$masks" "Reached target .*Multi-User System" || exit 1
    selling=$(guest_seconds "$out/ratio-selling.log" "Started .*receipt printer, cash drawer")
    plain=$(guest_seconds "$out/ratio-plain.log" "Reached target .*Multi-User System")
    switch_selling=$(guest_seconds "$out/ratio-selling.log" "Switching root")
    switch_plain=$(guest_seconds "$out/ratio-plain.log" "Switching root")
    python3 - "$selling" "$plain" "$switch_selling" "$switch_plain" "$RATIO_GOAL" <<'PY'
import sys
selling, plain, switch_selling, switch_plain, goal = map(float, sys.argv[1:])
ratio = selling / plain
print(f"build.sh: boot to the selling screen {selling:6.1f} s (guest clock; initramfs until {switch_selling:.1f} s)")
print(f"build.sh: kiosk units masked, to multi-user {plain:6.1f} s (initramfs until {switch_plain:.1f} s)")
print(f"build.sh: ratio {ratio:.2f} (goal <= {goal})  {'PASS' if ratio <= goal else 'MISS'}")
PY
}

pins() {  # the Python packages of OUT's built venv become image/constraints.txt
    arm64_emulation
    chroot "$1/rootfs" /opt/kiosk/venv/bin/pip freeze --exclude kiosk > "$HERE/constraints.txt"
}

usage="usage: build.sh configs DIR | wheel OUT | image OUT | pins OUT | refresh OUT | boot-test OUT | ab-test OUT | boot-ratio OUT | bundle OUT"
[ $# -eq 2 ] && [ -n "$2" ] || { echo "$usage" >&2; exit 2; }
# Every step works on absolute paths: several of them run from another folder (pip in
# the repository's root, sha256sum in OUT), where a relative OUT names something else.
target=$(realpath -m -- "$2")
# One compound command, read whole before it runs, that ends in exit: bash reads a script
# as it goes, so an edit to this file during a 50-minute build would otherwise be read
# from the old offset once the step returns (seen: "command not found" after the image).
{
case "$1" in
    configs) configs "$target" ;;
    wheel) mkdir -p "$target" && app_wheel "$target" ;;
    pins) pins "$target" ;;
    image) image "$target" ;;
    refresh) refresh "$target" ;;
    boot-test) boot_test "$target" ;;
    ab-test) ab_test "$target" ;;
    boot-ratio) boot_ratio "$target" ;;
    bundle) bundle "$target" ;;
    *) echo "$usage" >&2; exit 2 ;;
esac
exit
}
