"""From a site file and a device list to cards that know who they are: bundles,
broker credentials, rootless writes into image files, verification, first boot,
and the image recipe's generated files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.config import parse
from kiosk.provision import card, firstboot

REPO = Path(__file__).parent.parent
SITE = REPO / "provisioning" / "site.example.toml"
DEVICES = REPO / "provisioning" / "devices.example.csv"


def kiosk(*args):
    return subprocess.run(
        [sys.executable, "-m", "kiosk.cli", *args],
        capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != "KIOSK_CONFIG"},
    )  # fmt: skip


def need_tools():
    for tool, package in (("mcopy", "mtools"), ("mkfs.vfat", "dosfstools"), ("sfdisk", "fdisk"),
                          ("mosquitto_passwd", "mosquitto")):  # fmt: skip
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install {package} (./dev.sh test does)")


@pytest.fixture
def bundles(tmp_path):
    need_tools()
    result = kiosk("provision", "build", str(SITE), str(DEVICES), "--out", str(tmp_path / "out"),
                   "--broker-dir", str(tmp_path / "broker"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    return tmp_path / "out"


@pytest.fixture
def base_image(tmp_path):
    """A small card image built the way `make image` builds the real one."""
    need_tools()
    boot, root = tmp_path / "boot", tmp_path / "root"
    (boot / "overlays").mkdir(parents=True)
    (boot / "config.txt").write_text("arm_64bit=1\n")
    (boot / "cmdline.txt").write_text("root=LABEL=rootfs ro rootwait\n")
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("unprovisioned\n")
    image = tmp_path / "base.img"
    card.assemble(image, boot, root, boot_mib=32, root_mib=16, data_mib=8, fat=16)
    return image


def test_build_writes_a_checked_bundle_per_device(bundles, tmp_path):
    assert sorted(p.name for p in bundles.iterdir()) == ["cart-01", "sco-01", "till-01"]
    till = parse((bundles / "till-01" / "kiosk.toml").read_text())
    assert (till.device.id, till.device.store, till.device.role) == (
        "till-01",
        "store-042",
        "staffed",
    )
    assert (till.mqtt.username, str(till.mqtt.password_file)) == ("till-01", "/etc/kiosk/mqtt.pass")
    assert till.printer.usb == "04b8:0202" and till.drawer.pin == 17 and till.scanner.keymap == "de"
    assert till.checkout.receipt_header == ["Corner Shop", "1 High Street"]
    cart = parse((bundles / "cart-01" / "kiosk.toml").read_text())
    assert cart.printer.kind == "network" and cart.printer.host == "192.0.2.31"
    secret = bundles / "till-01" / "mqtt.pass"
    assert oct(secret.stat().st_mode)[-3:] == "600" and len(secret.read_text().strip()) >= 20
    users = [line.split(":")[0] for line in (tmp_path / "broker" / "passwd").read_text().split()]
    assert users == ["till-01", "sco-01", "cart-01"]
    assert (
        "pattern write shop/store-042/kiosk/%u/stock" in (tmp_path / "broker" / "acl").read_text()
    )


@pytest.mark.parametrize(
    ("site", "problem"),
    [
        ('[site]\nstore = "s"\ntimezone = "Mars/Olympus"\n[broker]\nhost = "h"\n', "unknown time zone"),
        ('[site]\nstore = "s"\n[broker]\nhost = "h"\ncolour = 1\n', "line 5: broker.colour: unknown key"),
        ('[site]\nstore = "s"\n[broker]\nhost = "h"\n[wifi]\nssid = "x"\npsk = "short"\n', "wifi.psk"),
        ('[site]\nstore = "s"\n', "broker: Field required"),
        ("[site\n", "not valid TOML"),
        ('[site]\nstore = "s"\n[broker]\nhost = "h"\n[defaults.money]\ncurrency = "euro"\n',
         "money.currency"),
    ],
)  # fmt: skip
def test_bad_site_files_are_refused_before_anything_is_written(tmp_path, site, problem):
    need_tools()
    path = tmp_path / "site.toml"
    path.write_text(site)
    result = kiosk("provision", "build", str(path), str(DEVICES), "--out", str(tmp_path / "out"),
                   "--broker-dir", str(tmp_path / "broker"))  # fmt: skip
    assert result.returncode == 2 and problem in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "broker").exists()


def test_bad_device_lists_report_every_line(tmp_path):
    need_tools()
    devices = tmp_path / "devices.csv"
    devices.write_text(
        "device,role,printer,scanner,keymap,drawer\n"
        "till-01,staffed,usb:04b8:0202,x,us,gpio\n"
        "till-01,staffed,none,x,us,gpio\n"
        "till 02,staffed,none,x,us,gpio\n"
        "till-03,robot,none,x,us,gpio\n"
        "till-04,staffed,laser,x,us,gpio\n"
        "till-05,staffed,none,x,qwertz,gpio\n"
        "till-06,staffed,none,x,us,gpio:99\n"
    )
    result = kiosk("provision", "build", str(SITE), str(devices), "--out", str(tmp_path / "out"),
                   "--broker-dir", str(tmp_path / "broker"))  # fmt: skip
    assert result.returncode == 2
    for expected in ("line 3: duplicate device till-01 (first on line 2)", "line 4: device 'till 02'",
                     "line 5: role 'robot'", "line 6: printer 'laser'", "line 7: keymap 'qwertz'",
                     "line 8: ", "drawer.pin"):  # fmt: skip
        assert expected in result.stderr, (expected, result.stderr)
    assert not (tmp_path / "out").exists()


def test_images_and_verify_without_root_mounts(bundles, base_image, tmp_path):
    bare = kiosk("provision", "verify", str(base_image))
    assert bare.returncode == 1 and "no kiosk bundle" in bare.stdout
    made = kiosk("provision", "images", str(bundles), str(base_image), str(tmp_path / "images"))
    assert made.returncode == 0, made.stderr
    images = sorted((tmp_path / "images").iterdir())
    assert [p.name for p in images] == ["cart-01.img", "sco-01.img", "till-01.img"]
    shown = kiosk("provision", "verify", str(tmp_path / "images" / "sco-01.img"))
    assert shown.returncode == 0, shown.stderr
    assert "device sco-01 (self-checkout) at store-042" in shown.stdout
    assert "broker password: present" in shown.stdout
    assert "Wi-Fi ShopNet (key ********)" in shown.stdout and "change-me" not in shown.stdout
    assert "partition 1: FAT boot, 32 MiB" in shown.stdout
    # The boot partition's own files are untouched by the write.
    files = card.read_bundle(tmp_path / "images" / "sco-01.img")
    assert set(files) == {"kiosk.toml", "mqtt.pass", "firstboot.toml"}
    wrong = kiosk("provision", "verify", str(SITE))
    assert wrong.returncode == 2 and "no MBR partition table" in wrong.stderr


def test_first_boot_installs_the_bundle_and_wipes_the_secrets(bundles, tmp_path):
    boot, root = tmp_path / "bootfs", tmp_path / "rootfs"
    shutil.copytree(bundles / "till-01", boot / "kiosk")
    root.mkdir()
    result = kiosk("provision", "firstboot", "--boot", str(boot), "--root", str(root))
    assert result.returncode == 0, result.stderr
    assert parse((root / "etc/kiosk/kiosk.toml").read_text()).device.id == "till-01"
    assert oct((root / "etc/kiosk/mqtt.pass").stat().st_mode)[-3:] == "640"
    assert (root / "etc/hostname").read_text() == "till-01\n"
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin"
    profile = root / "etc/NetworkManager/system-connections/kiosk-wifi.nmconnection"
    assert "ssid=ShopNet" in profile.read_text() and oct(profile.stat().st_mode)[-3:] == "600"
    assert not (boot / "kiosk").exists()  # no password or Wi-Fi key left on the card
    again = kiosk("provision", "firstboot", "--boot", str(boot), "--root", str(root))
    assert again.returncode == 2 and "no provisioned config" in again.stderr


def test_first_boot_refuses_a_broken_bundle_and_changes_nothing(tmp_path):
    boot, root = tmp_path / "bootfs", tmp_path / "rootfs"
    (boot / "kiosk").mkdir(parents=True)
    (boot / "kiosk" / "kiosk.toml").write_text("[device]\nid = 'bad id!'\n")
    root.mkdir()
    with pytest.raises(firstboot.FirstBootError, match="device.id"):
        firstboot.apply(boot, root)
    assert list(root.iterdir()) == [] and (boot / "kiosk" / "kiosk.toml").exists()


def test_image_recipe_generated_files_and_root_population(base_image, tmp_path):
    result = subprocess.run(["bash", str(REPO / "image" / "build.sh"), "configs", str(tmp_path / "c")],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    fstab = (tmp_path / "c/etc/fstab").read_text()
    assert "LABEL=rootfs     /                ext4   ro," in fstab
    assert "LABEL=kioskdata  /var/lib/kiosk" in fstab
    assert "tmpfs            /var/lib/systemd tmpfs" in fstab  # logind on a read-only root
    journald = (tmp_path / "c/etc/systemd/journald.conf.d/kiosk.conf").read_text()
    assert "RuntimeMaxUse=32M" in journald and "Storage=volatile" in journald
    assert " ro " in (tmp_path / "c/boot/firmware/cmdline.txt").read_text()
    packages = (tmp_path / "c/packages.txt").read_text().split()
    assert {"raspi-firmware", "linux-image-arm64", "systemd", "python3", "mosquitto",
            "libgbm1", "libegl1", "libgles2"} <= set(packages)  # fmt: skip
    syntax = subprocess.run(["bash", "-n", str(REPO / "image" / "build.sh")], capture_output=True)
    assert syntax.returncode == 0
    parts = card.partitions(base_image)
    assert [p.type for p in parts] == [0x0E, 0x83, 0x83]
    assert all(p.start % (1024 * 1024) == 0 for p in parts)  # 1 MiB aligned
    root_fs = tmp_path / "root.ext4"
    with open(base_image, "rb") as image, open(root_fs, "wb") as out:
        image.seek(parts[1].start)
        out.write(image.read(parts[1].size))
    shown = subprocess.run(["debugfs", "-R", "cat /etc/hostname", str(root_fs)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert shown.stdout == "unprovisioned\n"  # populated by mkfs.ext4 -d, no mount
