"""The A/B card and the update's system files, as far as this machine builds them
without the arm64 root: the card's partitions and slot command lines, RAUC's
post-install handler on a slot's boot file system, `build.sh bundle` on a small built
root, the units (systemd-analyze verify) and RAUC's system.conf against the layout."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kiosk.provision import card
from kiosk.update import UpdateError, bundle, identity, layout, tryboot

REPO = Path(__file__).parent.parent
IMAGE = REPO / "image"


@pytest.fixture(scope="module")
def tools():
    for tool, package in (("sfdisk", "fdisk"), ("mkfs.vfat", "dosfstools"), ("mcopy", "mtools"),
                          ("mkfs.ext4", "e2fsprogs")):  # fmt: skip
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install {package}")


@pytest.fixture(scope="module")
def built(tmp_path_factory, tools):
    """A tiny 'built' OUT: a slot boot folder and root folder, their images."""
    out = tmp_path_factory.mktemp("out")
    (out / "boot").mkdir()
    (out / "boot" / "cmdline.txt").write_text(
        "console=serial0,115200 console=tty1 root=LABEL=rootfs ro rootwait fsck.repair=yes quiet\n"
    )
    (out / "boot" / "config.txt").write_text("[all]\narm_64bit=1\n")
    (out / "rootfs" / "etc").mkdir(parents=True)
    (out / "rootfs" / "etc" / "hostname").write_text("unprovisioned\n")
    (out / "data" / "kiosk").mkdir(parents=True)
    boot = layout.fat_image(out / "slot-boot.vfat", out / "boot", "KIOSKSLOT", 64)
    root = layout.ext4_image(out / "slot-root.ext4", out / "rootfs", "rootfs", 32)
    return out, boot, root


def test_ab_card_layout(built, tmp_path):
    out, boot, root = built
    (tmp_path / "bootsel").mkdir()
    image = tmp_path / "kiosk.img"
    parts = layout.assemble_ab(image, tmp_path / "bootsel", boot, root, out / "data",
                               bootsel_mib=32, boot_mib=64, root_mib=32, data_mib=32)  # fmt: skip
    table = json.loads(subprocess.run(["sfdisk", "--json", str(image)], capture_output=True,
                                      text=True, check=True).stdout)["partitiontable"]  # fmt: skip
    assert table["id"] == f"0x{layout.DISK_ID}"
    numbers = [int(re.search(r"(\d+)$", p["node"]).group(1)) for p in table["partitions"]]
    assert numbers == [1, 2, 3, 4, 5, 6, 7]
    assert [p["type"] for p in table["partitions"]] == ["e", "e", "e", "5", "83", "83", "83"]
    assert all(start % (1024 * 1024) == 0 for _, start, _ in parts)
    # provisioning still finds the first FAT partition: the boot selection one
    assert card.boot_partition(image).start == parts[0][1]
    autoboot = layout.read_fat_file(str(image), "autoboot.txt", parts[0][1])
    assert tryboot.firmware_choice(autoboot, tryboot=False) == tryboot.SLOTS["A"]
    assert tryboot.firmware_choice(autoboot, tryboot=True) == tryboot.SLOTS["B"]
    starts = {number: start for number, start, _ in parts}
    line_a = layout.read_fat_file(str(image), "cmdline.txt", starts[2])
    line_b = layout.read_fat_file(str(image), "cmdline.txt", starts[3])
    assert "root=PARTUUID=6b696f73-05" in line_a and line_a.rstrip().endswith("rauc.slot=A")
    assert "root=PARTUUID=6b696f73-06" in line_b and line_b.rstrip().endswith("rauc.slot=B")
    assert "LABEL=rootfs" not in line_a + line_b and " ro " in line_a
    # both roots hold the same file system
    with open(image, "rb") as handle:
        handle.seek(starts[5])
        slot_a = handle.read(root.stat().st_size)
        handle.seek(starts[6])
        slot_b = handle.read(root.stat().st_size)
    assert slot_a == slot_b == root.read_bytes()


def test_post_install_handler_writes_the_target_slots_cmdline(built, tmp_path):
    _, boot, _ = built
    written = tmp_path / "boot-b.vfat"
    shutil.copy(boot, written)  # what RAUC just wrote into slot B's boot partition
    env = {"RAUC_TARGET_SLOTS": "2",
           "RAUC_SLOT_CLASS_1": "rootfs", "RAUC_SLOT_DEVICE_1": "/dev/null",
           "RAUC_SLOT_TYPE_1": "ext4",
           "RAUC_SLOT_PARENT_1": "",
           "RAUC_SLOT_CLASS_2": "boot", "RAUC_SLOT_DEVICE_2": str(written),
           "RAUC_SLOT_PARENT_2": "rootfs.1"}  # fmt: skip
    result = subprocess.run(["python3", "-m", "kiosk.update.layout", "post-install"],
                            env={"PATH": "/usr/bin:/bin", **env}, cwd=REPO,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    line = layout.read_fat_file(str(written), "cmdline.txt")
    assert "root=PARTUUID=6b696f73-06" in line and "rauc.slot=B" in line
    env["RAUC_SLOT_PARENT_2"] = "rootfs.7"
    result = subprocess.run(["python3", "-m", "kiosk.update.layout", "post-install"],
                            env={"PATH": "/usr/bin:/bin", **env}, cwd=REPO,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    # A root slot gets the device's identity: on something that is not a block device
    # (no root slot) the handler refuses in one line.
    env["RAUC_SLOT_PARENT_2"] = "rootfs.1"
    env["RAUC_TARGET_SLOTS"] = "1 2"
    result = subprocess.run(["python3", "-m", "kiosk.update.layout", "post-install"],
                            env={"PATH": "/usr/bin:/bin", **env}, cwd=REPO,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1 and "not a block device" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _root(folder: Path, users: str, groups: str) -> Path:
    (folder / "etc").mkdir(parents=True)
    (folder / "etc" / "passwd").write_text(users)
    (folder / "etc" / "group").write_text(groups)
    return folder


def test_identity_is_carried_into_the_new_root_with_owners_by_name(tmp_path):
    """What first boot wrote into the running root goes into the freshly written slot;
    a newer build that numbers the kiosk group differently gets its own number."""
    users = "root:x:0:0::/root:/bin/sh\n"
    running = _root(tmp_path / "running", users, "root:x:0:\nkiosk:x:4242:\n")
    fresh = _root(tmp_path / "fresh", users, "root:x:0:\nkiosk:x:4343:\n")
    etc = running / "etc"
    (etc / "kiosk" / "broker").mkdir(parents=True)
    (etc / "kiosk" / "kiosk.toml").write_text("[device]\nid = 'till-01'\n")
    (etc / "kiosk" / "mqtt.pass").write_text("secret\n")
    (etc / "kiosk" / "mqtt.pass").chmod(0o640)
    os.chown(etc / "kiosk" / "mqtt.pass", 0, 4242)
    (etc / "kiosk" / "broker" / "acl").write_text("topic read #\n")
    (etc / "hostname").write_text("till-01\n")
    (etc / "localtime").symlink_to("/usr/share/zoneinfo/Europe/Berlin")
    wants = etc / "systemd" / "system" / "multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "mosquitto.service").symlink_to("/lib/systemd/system/mosquitto.service")
    (fresh / "etc" / "hostname").write_text("localhost\n")
    (fresh / "etc" / "localtime").symlink_to("/usr/share/zoneinfo/Etc/UTC")
    done = identity.carry(running, fresh)
    mosquitto = "/etc/systemd/system/multi-user.target.wants/mosquitto.service"
    assert set(done) == {"/etc/kiosk", "/etc/hostname", "/etc/localtime", mosquitto}
    new = fresh / "etc"
    assert (new / "kiosk" / "kiosk.toml").read_text() == "[device]\nid = 'till-01'\n"
    assert (new / "kiosk" / "broker" / "acl").read_text() == "topic read #\n"
    secret = (new / "kiosk" / "mqtt.pass").stat()
    assert secret.st_mode & 0o777 == 0o640 and secret.st_gid == 4343
    assert (new / "hostname").read_text() == "till-01\n"
    assert os.readlink(new / "localtime") == "/usr/share/zoneinfo/Europe/Berlin"
    assert os.readlink(new / "systemd/system/multi-user.target.wants/mosquitto.service") == (
        "/lib/systemd/system/mosquitto.service"
    )
    (etc / "group").write_text("root:x:0:\nkiosk:x:4242:\n")
    (fresh / "etc" / "group").write_text("root:x:0:\n")
    with pytest.raises(UpdateError, match="no user or group 'kiosk'"):
        identity.carry(running, fresh)


def test_cmdline_keeps_the_images_words():
    base = "console=serial0,115200 console=tty1 root=LABEL=rootfs ro rootwait quiet\n"
    line = layout.cmdline("B", base)
    assert line.split() == ["console=serial0,115200", "root=PARTUUID=6b696f73-06",
                            "console=tty1", "ro", "rootwait", "quiet", "rauc.slot=B"]  # fmt: skip
    assert layout.cmdline("B", line) == line  # idempotent


def test_build_sh_bundle_step(built, tmp_path):
    """`build.sh bundle OUT` signs OUT's slot images with a development key when no
    SIGN_KEY is given; the bundle passes our check with that certificate."""
    if shutil.which("rauc") is None or shutil.which("mksquashfs") is None:
        pytest.fail("rauc is missing: apt-get install rauc squashfs-tools")
    out = tmp_path / "out"
    shutil.copytree(built[0], out)
    env = {"PATH": "/usr/sbin:/usr/bin:/bin", "VERSION": "9.8.7"}
    result = subprocess.run(["bash", str(IMAGE / "build.sh"), "bundle", str(out)],
                            capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "development key" in result.stderr
    made = out / "kiosk-9.8.7.raucb"
    info = bundle.check(made, out / "dev-key" / "kiosk-dev.cert.pem")
    assert info.version == "9.8.7" and set(info.images) == {"rootfs", "boot"}
    assert (out / "kiosk-9.8.7.raucb.sha256").read_text().split()[1] == made.name


def test_rauc_system_conf_matches_the_layout():
    conf = configparser.ConfigParser()
    conf.read(IMAGE / "rauc" / "system.conf")
    assert conf["system"]["compatible"] == bundle.COMPATIBLE
    assert conf["system"]["bootloader"] == "custom"
    assert conf["system"]["bundle-formats"] == "verity"
    assert conf["system"]["data-directory"].startswith("/data/")
    for index, (name, boot_part) in enumerate(sorted(tryboot.SLOTS.items())):
        root = conf[f"slot.rootfs.{index}"]
        assert root["bootname"] == name
        assert root["device"] == f"/dev/disk/by-partuuid/{layout.DISK_ID}-{layout.ROOTS[name]:02d}"
        boot = conf[f"slot.boot.{index}"]
        assert boot["parent"] == f"rootfs.{index}" and boot["type"] == "vfat"
        assert boot["device"] == f"/dev/disk/by-partuuid/{layout.DISK_ID}-{boot_part:02d}"
    for handler in ("bootloader-custom-backend", "post-install"):
        script = IMAGE / "rauc" / Path(conf["handlers"][handler]).name
        assert script.exists() and script.stat().st_mode & 0o111


@pytest.fixture
def unit_root(tmp_path):
    """systemd's own units, ours and rauc's, every command they run stubbed."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd")
    root = tmp_path / "root"
    shutil.copytree("/lib/systemd/system", root / "lib/systemd/system", symlinks=True)
    system = root / "etc/systemd/system"
    shutil.copytree(REPO / "systemd", system)
    for unit in (IMAGE / "systemd").iterdir():
        shutil.copy(unit, system)
    if not (root / "lib/systemd/system/rauc.service").exists():
        (root / "lib/systemd/system/rauc.service").write_text(
            "[Unit]\nDescription=rauc\n[Service]\nType=dbus\nBusName=de.pengutronix.rauc\n"
            "ExecStart=/usr/bin/rauc service\n"
        )
    for unit in [*system.rglob("*.service"), root / "lib/systemd/system/rauc.service"]:
        for command in re.findall(r"^Exec\w*=[-@:+!]*(/\S+)", unit.read_text(), re.M):
            stub = root / command.lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\nexit 0\n")
            stub.chmod(0o755)
    return root


@pytest.mark.parametrize(
    "unit",
    ["kiosk-update-check.service", "kiosk-update-switch.service", "kiosk-update-switch.timer",
     "kiosk-update-usb@sda1.service", "kiosk-update-guard.service", "kiosk-update-guard.timer",
     "kiosk-update-fetch.service", "kiosk-update-fetch.timer"],
)  # fmt: skip
def test_update_units_verify_cleanly(unit_root, unit):
    result = subprocess.run(["systemd-analyze", "verify", f"--root={unit_root}", unit],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result


def test_usb_rule_starts_the_usb_unit_for_usb_file_systems():
    rule = (IMAGE / "udev" / "90-kiosk-update-usb.rules").read_text().replace("\\\n", " ")
    lines = [line for line in rule.splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) == 1
    assert 'ENV{ID_BUS}=="usb"' in lines[0] and 'ENV{ID_FS_USAGE}=="filesystem"' in lines[0]
    assert 'ENV{SYSTEMD_WANTS}+="kiosk-update-usb@%k.service"' in lines[0]
    assert (IMAGE / "systemd" / "kiosk-update-usb@.service").exists()


def test_qemu_harness_plays_the_firmware(tmp_path, tools):
    """image/abboot.py: the slot autoboot.txt selects, the one-shot tryboot request
    consumed, the chosen slot's kernel, initramfs and command line for qemu."""
    boot = tmp_path / "slotboot"
    boot.mkdir()
    (boot / "config.txt").write_text(
        "[all]\narm_64bit=1\nkernel=vmlinuz-7.0.1-arm64\n"
        "initramfs initrd.img-7.0.1-arm64 followkernel\n"
    )
    (boot / "cmdline.txt").write_text("console=serial0,115200 console=tty1 root=LABEL=rootfs ro\n")
    (boot / "vmlinuz-7.0.1-arm64").write_bytes(b"kernel")
    (boot / "initrd.img-7.0.1-arm64").write_bytes(b"initrd")
    (tmp_path / "bootsel").mkdir()
    (tmp_path / "rootfs").mkdir()
    image = tmp_path / "kiosk.img"
    parts = layout.assemble_ab(
        image, tmp_path / "bootsel", layout.fat_image(tmp_path / "b.vfat", boot, "KIOSKSLOT", 64),
        layout.ext4_image(tmp_path / "r.ext4", tmp_path / "rootfs", "rootfs", 16), None,
        bootsel_mib=32, boot_mib=64, root_mib=16, data_mib=16,
    )  # fmt: skip

    def choose() -> dict[str, str]:
        result = subprocess.run(["python3", str(IMAGE / "abboot.py"), "choose", str(image),
                                 str(tmp_path / "work")], capture_output=True, text=True,
                                timeout=120)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return dict(line.split("=", 1) for line in result.stdout.splitlines())

    normal = choose()
    assert (normal["SLOT"], normal["PART"], normal["TRIAL"]) == ("A", "2", "0")
    assert Path(normal["KERNEL"]).read_bytes() == b"kernel"
    assert Path(normal["INITRD"]).name == "initrd.img-7.0.1-arm64"
    append = normal["APPEND"].strip("'")
    assert append.startswith("console=ttyAMA0 root=PARTUUID=6b696f73-05")
    assert "serial0" not in append and "rauc.slot=A" in append and "tryboot" not in append
    # the backend asked for a trial of B before rebooting: one boot of B, then A again
    layout.write_fat_file(str(image), tryboot.TRYBOOT_REQUEST, "B\n", parts[0][1])
    trial = choose()
    assert (trial["SLOT"], trial["TRIAL"]) == ("B", "1")
    assert "root=PARTUUID=6b696f73-06" in trial["APPEND"]
    assert trial["APPEND"].strip("'").endswith("rauc.slot=B kiosk.tryboot=1")
    assert choose()["SLOT"] == "A"


@pytest.mark.parametrize(
    ("pending", "booted", "node", "reboots"),
    [("B", "B", None, True), ("B", "A", None, False), (None, "B", None, False),
     ("B", "A", 3, True), ("A", "A", 3, False)],
)  # fmt: skip
def test_trial_guard_reboots_an_undecided_trial(tmp_path, pending, booted, node, reboots):
    """image/rauc/kiosk-trial-guard, plain shell: reboot only when the booted slot is
    still the one on trial (the firmware's partition node wins over the command line)."""
    (tmp_path / "boot").mkdir()
    if pending:
        (tmp_path / "boot" / "kiosk-slots.txt").write_text(f"A=good\nB=good\npending={pending}\n")
    (tmp_path / "cmdline").write_text(f"console=ttyAMA0 rauc.slot={booted} ro\n")
    (tmp_path / "dt").mkdir()
    if node:
        (tmp_path / "dt" / "partition").write_bytes(node.to_bytes(4, "big"))
    env = {"PATH": "/usr/bin:/bin", "KIOSK_BOOTSEL": str(tmp_path / "boot"),
           "KIOSK_FIRMWARE_DT": str(tmp_path / "dt"), "KIOSK_CMDLINE": str(tmp_path / "cmdline"),
           "KIOSK_REBOOT": "echo REBOOTING"}  # fmt: skip
    result = subprocess.run(["sh", str(IMAGE / "rauc" / "kiosk-trial-guard")], env=env,
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert ("REBOOTING" in result.stdout) == reboots, result.stdout


def test_ab_card_takes_rauc_and_libnl_alone_from_the_next_release(tmp_path):
    """trixie's RAUC 1.13 cannot mount a verity bundle on the image's kernel
    (rauc/rauc#1846): the A/B card's build adds forky, pinned so that apt takes RAUC
    and the libnl it needs from there and nothing else; the single card does not."""
    build = Path(__file__).resolve().parent.parent / "image" / "build.sh"
    made = subprocess.run(["bash", str(build), "configs", str(tmp_path / "ab")],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "LAYOUT": "ab"})  # fmt: skip
    assert made.returncode == 0, made.stderr
    sources = (tmp_path / "ab/sources.list").read_text().splitlines()
    assert sources[-1] == "deb [check-valid-until=no] http://deb.debian.org/debian forky main"
    assert sum("forky" in line for line in sources) == 1
    text = (tmp_path / "ab/etc/apt/preferences.d/kiosk-rauc.pref").read_text()
    stanzas = [s for s in text.split("\n\n") if "Package:" in s]
    fields = [dict(line.split(": ", 1) for line in s.splitlines() if not line.startswith("#"))
              for s in stanzas]  # fmt: skip
    assert fields == [
        {"Package": "*", "Pin": "release n=forky", "Pin-Priority": "100"},
        {"Package": "rauc rauc-service libnl-3-200 libnl-genl-3-200 libnl-route-3-200",
         "Pin": "release n=forky", "Pin-Priority": "990"},
    ]  # fmt: skip
    single = subprocess.run(["bash", str(build), "configs", str(tmp_path / "one")],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "LAYOUT": "single"})  # fmt: skip
    assert single.returncode == 0, single.stderr
    assert "forky" not in (tmp_path / "one/sources.list").read_text()
    assert not (tmp_path / "one/etc/apt/preferences.d").exists()
