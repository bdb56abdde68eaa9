#!/usr/bin/env bash
# The kiosk SD-card image: mmdebstrap builds an arm64 Debian root with the app in a
# venv, then kiosk.provision.card assembles boot (FAT), root (ext4, mounted read-only)
# and data (ext4, the ledger) partitions without a single loop mount.
#   build.sh configs DIR              the generated system files only
#   build.sh image OUT [SUITE]        OUT/kiosk.img.xz, OUT/kiosk.img.bmap, OUT/kiosk.img.xz.sha256
#   build.sh boot-test OUT            boot OUT/kiosk.img in qemu and wait for the services
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
PACKAGES=(systemd systemd-sysv udev dbus raspi-firmware linux-image-arm64 firmware-brcm80211
          python3 python3-venv ca-certificates network-manager mosquitto
          libxkbcommon0 xkb-data fonts-dejavu-core libmtdev1 libgl1-mesa-dri libegl1 libgbm1
          libusb-1.0-0 tzdata iproute2)
BUILD_ONLY=(gcc python3-dev libxkbcommon-dev linux-libc-dev swig)

configs() {
    local dir=$1
    mkdir -p "$dir/etc/systemd/journald.conf.d" "$dir/etc/udev/rules.d" "$dir/boot/firmware" \
             "$dir/etc/default"
    cat > "$dir/etc/fstab" <<'FSTAB'
# Read-only root: a power cut cannot corrupt the system. The ledger lives on its own
# partition, mounted read-write with a short commit interval.
LABEL=rootfs     /                ext4   ro,noatime                 0 1
LABEL=BOOT       /boot/firmware   vfat   defaults,noatime,umask=077 0 2
LABEL=kioskdata  /var/lib/kiosk   ext4   defaults,noatime,commit=5  0 2
tmpfs            /tmp             tmpfs  nosuid,nodev,size=64m      0 0
tmpfs            /var/tmp         tmpfs  nosuid,nodev,size=16m      0 0
tmpfs            /var/log         tmpfs  nosuid,nodev,size=32m      0 0
tmpfs            /var/lib/NetworkManager tmpfs nosuid,nodev,size=4m 0 0
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
}

image() {
    local out=$1 suite=${2:-bookworm}
    [ "$(id -u)" = 0 ] || { echo "build.sh: run as root (mmdebstrap, chroot)" >&2; exit 2; }
    for tool in mmdebstrap qemu-aarch64-static sfdisk mkfs.vfat mcopy mkfs.ext4 bmaptool xz; do
        command -v "$tool" >/dev/null || { echo "build.sh: $tool missing: apt-get install mmdebstrap qemu-user-static binfmt-support fdisk dosfstools mtools e2fsprogs bmap-tools xz-utils" >&2; exit 2; }
    done
    [ -d /proc/sys/fs/binfmt_misc ] && ! mountpoint -q /proc/sys/fs/binfmt_misc \
        && mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    mkdir -p "$out"
    local root="$out/rootfs" wheel
    rm -rf "$root" "$out/configs"
    configs "$out/configs"
    (cd "$REPO" && python3 -m pip wheel --no-deps -w "$out/wheels" . >/dev/null)
    wheel=$(ls "$out"/wheels/kiosk-*.whl)
    # pip inside the image trusts what pip on this machine trusts (a proxy's CA, say),
    # and runs with a clean environment: this machine's PIP_* settings are not the image's.
    local ca=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || echo /etc/ssl/certs/ca-certificates.crt)}
    mmdebstrap --architectures=arm64 --variant=minbase --components=main,non-free-firmware \
        --include="$(IFS=,; echo "${PACKAGES[*]},${BUILD_ONLY[*]}")" \
        --customize-hook="cp -r $out/configs/etc/. \"\$1/etc/\"" \
        --customize-hook="mkdir -p \"\$1/opt/kiosk\" && cp $wheel \"\$1/opt/kiosk/\"" \
        --customize-hook="chroot \"\$1\" python3 -m venv --system-site-packages /opt/kiosk/venv" \
        --customize-hook="cp $ca \"\$1/tmp/build-ca.crt\"" \
        --customize-hook="chroot \"\$1\" env -i PATH=/usr/sbin:/usr/bin:/bin HOME=/root PIP_CERT=/tmp/build-ca.crt /opt/kiosk/venv/bin/pip install --no-cache-dir /opt/kiosk/$(basename "$wheel") lgpio" \
        --customize-hook="rm -f \"\$1/tmp/build-ca.crt\"" \
        --customize-hook="chroot \"\$1\" apt-get purge -y ${BUILD_ONLY[*]}" \
        --customize-hook="chroot \"\$1\" apt-get autoremove -y" \
        --customize-hook="chroot \"\$1\" groupadd -f gpio" \
        --customize-hook="chroot \"\$1\" useradd --system --create-home --home-dir /var/lib/kiosk --groups input,gpio,lp,dialout,video,render kiosk" \
        --customize-hook="cp $REPO/systemd/*.service \"\$1/etc/systemd/system/\"" \
        --customize-hook="cp -r $REPO/systemd/mosquitto.service.d \"\$1/etc/systemd/system/\"" \
        --customize-hook="chroot \"\$1\" systemctl enable kiosk.service kiosk-firstboot.service NetworkManager.service" \
        --customize-hook="chroot \"\$1\" systemctl disable mosquitto.service" \
        --customize-hook="cp $out/configs/boot/firmware/cmdline.txt \"\$1/boot/firmware/\"" \
        "$suite" "$root"
    mkdir -p "$out/boot"
    cp -r "$root/boot/firmware/." "$out/boot/"
    rm -rf "$root/boot/firmware"/*
    (cd "$REPO" && python3 -c "
from pathlib import Path
from kiosk.provision.card import assemble
assemble(Path('$out/kiosk.img'), Path('$out/boot'), Path('$root'))")
    bmaptool create -o "$out/kiosk.img.bmap" "$out/kiosk.img"
    xz -T0 -9 -f "$out/kiosk.img"
    (cd "$out" && sha256sum kiosk.img.xz > kiosk.img.xz.sha256)
    echo "build.sh: $out/kiosk.img.xz ready"
}

boot_test() {
    local out=$1 image="$1/kiosk-test.img" log="$1/boot.log"
    command -v qemu-system-aarch64 >/dev/null || { echo "build.sh: apt-get install qemu-system-arm" >&2; exit 2; }
    xz -dkc "$out/kiosk.img.xz" > "$image"
    local kernel initrd
    kernel=$(ls "$out"/rootfs/boot/vmlinuz-* | head -1)
    initrd=$(ls "$out"/rootfs/boot/initrd.img-* | head -1)
    timeout 900 qemu-system-aarch64 -M virt -cpu cortex-a72 -m 1024 -nographic \
        -kernel "$kernel" -initrd "$initrd" \
        -append "console=ttyAMA0 root=LABEL=rootfs ro rootwait systemd.unit=multi-user.target" \
        -drive "file=$image,format=raw,if=virtio" -netdev user,id=n0,restrict=on \
        -device virtio-net-pci,netdev=n0,romfile= > "$log" 2>&1 &
    local qemu=$! found=1
    for _ in $(seq 1 180); do
        # systemd prints unit names between colour codes, truncated: match the name alone.
        if sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -q "Starting kiosk.service"; then found=0; break; fi
        sleep 5
    done
    kill "$qemu" 2>/dev/null || true
    [ $found = 0 ] && echo "build.sh: the services started (see $log)" || { echo "build.sh: no kiosk service in $log" >&2; exit 1; }
}

case "${1:-}" in
    configs) configs "${2:?folder}" ;;
    image) image "${2:?out}" "${3:-bookworm}" ;;
    boot-test) boot_test "${2:?out}" ;;
    *) echo "usage: build.sh configs DIR | image OUT [SUITE] | boot-test OUT" >&2; exit 2 ;;
esac
