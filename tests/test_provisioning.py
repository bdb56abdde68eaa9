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
    assert users == ["till-01", "sco-01", "cart-01", "controller"]
    assert (
        "pattern write shop/store-042/kiosk/%u/stock" in (tmp_path / "broker" / "acl").read_text()
    )


def test_the_broker_host_gets_broker_and_controller_with_device_paths(bundles, tmp_path):
    """till-01 hosts the shop broker (site file: [broker] device): it reaches it on
    loopback, the others at the site's address; its bundle carries the broker's files
    as they will sit on the device, and the controller's config."""
    till, sco = bundles / "till-01", bundles / "sco-01"
    assert parse((till / "kiosk.toml").read_text()).mqtt.host == "127.0.0.1"
    assert parse((sco / "kiosk.toml").read_text()).mqtt.host == "192.0.2.10"
    assert not (sco / "broker").exists() and not (sco / "controller.toml").exists()
    conf = (till / "broker" / "mosquitto.conf").read_text()
    for line in ("password_file /etc/kiosk/broker/passwd", "acl_file /etc/kiosk/broker/acl",
                 "persistence_location /var/lib/mosquitto/", "log_dest stderr",
                 "listener 1883 0.0.0.0", "allow_anonymous false"):  # fmt: skip
        assert line in conf.splitlines(), line
    assert (till / "broker" / "passwd").read_text() == (tmp_path / "broker" / "passwd").read_text()
    assert oct((till / "broker" / "passwd").stat().st_mode)[-3:] == "600"
    controller = parse((till / "controller.toml").read_text())
    assert (controller.mqtt.host, controller.mqtt.username) == ("127.0.0.1", "controller")
    assert str(controller.mqtt.password_file) == "/etc/kiosk/controller.pass"
    assert controller.controller.database == "/var/lib/kiosk/controller.db"
    assert controller.topic_root == "shop/store-042"
    # its web view is on, on the shop LAN (the site file's [broker] web_port, 8080 by default)
    assert (controller.controller.web_port, controller.controller.web_host) == (8080, "0.0.0.0")
    # every kiosk takes updates from that web view; the host itself on loopback
    assert (
        parse((sco / "kiosk.toml").read_text()).update.source == "http://192.0.2.10:8080/updates/"
    )
    assert (
        parse((till / "kiosk.toml").read_text()).update.source == "http://127.0.0.1:8080/updates/"
    )
    assert oct((till / "controller.pass").stat().st_mode)[-3:] == "600"


def test_building_again_for_a_new_device_keeps_the_others_passwords(bundles, tmp_path):
    before = {d: (bundles / d / "mqtt.pass").read_text() for d in ("till-01", "sco-01")}
    controller = (bundles / "till-01" / "controller.pass").read_text()
    devices = tmp_path / "more.csv"
    devices.write_text(DEVICES.read_text() + "sco-02,self-checkout,none,x,de,none\n")
    result = kiosk("provision", "build", str(SITE), str(devices), "--out", str(bundles),
                   "--broker-dir", str(tmp_path / "broker"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert {d: (bundles / d / "mqtt.pass").read_text() for d in before} == before
    assert (bundles / "till-01" / "controller.pass").read_text() == controller
    users = [line.split(":")[0] for line in (tmp_path / "broker" / "passwd").read_text().split()]
    assert sorted(users) == ["cart-01", "controller", "sco-01", "sco-02", "till-01"]
    host_copy = (bundles / "till-01" / "broker" / "passwd").read_text()
    assert host_copy == (tmp_path / "broker" / "passwd").read_text()


def test_provisioned_credentials_log_in_to_a_real_mosquitto(bundles, tmp_path):
    """The host's password file and ACL, run by a real Mosquitto on loopback: every
    device and the controller log in with the passwords their bundles carry."""
    import paho.mqtt.client as paho

    from kiosk.mqtt import broker
    from tests.mqtt_env import free_port, wait_until

    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("acl", "passwd"):
        shutil.copyfile(bundles / "till-01" / "broker" / name, folder / name)
    (folder / "data").mkdir()
    port = free_port()
    (folder / "mosquitto.conf").write_text(broker.render_config(
        folder, port=port, listen="127.0.0.1", run_as="root" if os.geteuid() == 0 else None
    ))  # fmt: skip
    process = subprocess.Popen(["mosquitto", "-c", str(folder / "mosquitto.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip

    def login(user: str, password: str) -> int:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"t-{user}")
        client.username_pw_set(user, password)
        codes = []
        client.on_connect = lambda c, u, f, code, p: codes.append(code.value)
        client.connect("127.0.0.1", port)
        client.loop_start()
        try:
            wait_until(lambda: codes, 10, what=f"{user} to get an answer")
        finally:
            client.loop_stop()
            client.disconnect()
        return codes[0]

    try:
        wait_until(lambda: login_ready(port), 10, what="mosquitto to listen")
        for device in ("till-01", "sco-01", "cart-01"):
            assert login(device, (bundles / device / "mqtt.pass").read_text().strip()) == 0
        assert login("controller", (bundles / "till-01/controller.pass").read_text().strip()) == 0
        assert login("sco-01", "not-the-password") != 0
    finally:
        process.terminate()
        process.wait(10)


def login_ready(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize(
    ("broker", "problem"),
    [
        ('device = "ghost"\n', "line 6: broker.device: ghost is not in"),
        ('device = "till-01"\ntls = true\n', "line 6: broker.device: a kiosk hosts a plain broker"),
    ],
)  # fmt: skip
def test_a_broker_host_outside_the_list_or_with_tls_is_refused(tmp_path, broker, problem):
    need_tools()
    path = tmp_path / "site.toml"
    path.write_text(f'[site]\nstore = "s"\n\n[broker]\nhost = "h"\n{broker}')
    result = kiosk("provision", "build", str(path), str(DEVICES), "--out", str(tmp_path / "out"),
                   "--broker-dir", str(tmp_path / "broker"))  # fmt: skip
    assert result.returncode == 2 and problem in result.stderr, result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "broker").exists()


@pytest.mark.parametrize(
    ("site", "problem"),
    [
        ('[site]\nstore = "s"\ntimezone = "Mars/Olympus"\n[broker]\nhost = "h"\n', "unknown time zone"),
        ('[site]\nstore = "s"\n[broker]\nhost = "h"\ncolour = 1\n', "line 5: broker.colour: unknown key"),
        ('[site]\nstore = "s"\n[broker]\nhost = "h"\nweb_port = 70000\n', "broker.web_port"),
        ('[site]\nstore = "s"\n[broker]\nhost = "h"\n[wifi]\nssid = "x"\npsk = "short"\n', "wifi.psk"),
        ('[site]\nstore = "s"\n', "broker: missing (required)"),
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
    assert "hosts the shop broker" not in shown.stdout
    host = kiosk("provision", "verify", str(tmp_path / "images" / "till-01.img"))
    assert host.returncode == 0, host.stderr
    assert "broker 127.0.0.1:1883 as till-01" in host.stdout
    assert "hosts the shop broker (4 users) and the controller" in host.stdout
    till = card.read_bundle(tmp_path / "images" / "till-01.img")
    assert till["broker/acl"] == (bundles / "till-01" / "broker" / "acl").read_text()
    assert set(till) == {"kiosk.toml", "mqtt.pass", "firstboot.toml", "controller.toml",
                         "controller.pass", "broker/mosquitto.conf", "broker/acl",
                         "broker/passwd"}  # fmt: skip
    # The boot partition's own files are untouched by the write.
    files = card.read_bundle(tmp_path / "images" / "sco-01.img")
    assert set(files) == {"kiosk.toml", "mqtt.pass", "firstboot.toml"}
    wrong = kiosk("provision", "verify", str(SITE))
    assert wrong.returncode == 2 and "no MBR partition table" in wrong.stderr


def first_boot(bundle: Path, tmp_path: Path):
    """A bundle on a boot folder, first boot run against a root with the image's groups."""
    boot, root = tmp_path / "bootfs", tmp_path / "rootfs"
    shutil.copytree(bundle, boot / "kiosk")
    (root / "etc").mkdir(parents=True)
    (root / "etc/group").write_text("kiosk:x:990:\nmosquitto:x:107:\n")
    result = kiosk("provision", "firstboot", "--boot", str(boot), "--root", str(root))
    assert result.returncode == 0, result.stderr
    return boot, root, result


def test_first_boot_installs_the_bundle_and_wipes_the_secrets(bundles, tmp_path):
    boot, root, result = first_boot(bundles / "sco-01", tmp_path)
    assert parse((root / "etc/kiosk/kiosk.toml").read_text()).device.id == "sco-01"
    secret = (root / "etc/kiosk/mqtt.pass").stat()
    assert oct(secret.st_mode)[-3:] == "640"
    if os.geteuid() == 0:  # the app runs as kiosk: the group of the device's /etc/group
        assert secret.st_gid == 990
    assert not (root / "etc/kiosk/broker").exists()  # sco-01 does not host the broker
    assert not (root / "etc/systemd/system/multi-user.target.wants").exists()
    assert (root / "etc/hostname").read_text() == "sco-01\n"
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin"
    profile = root / "etc/NetworkManager/system-connections/kiosk-wifi.nmconnection"
    assert "ssid=ShopNet" in profile.read_text() and oct(profile.stat().st_mode)[-3:] == "600"
    assert not (boot / "kiosk").exists()  # no password or Wi-Fi key left on the card
    again = kiosk("provision", "firstboot", "--boot", str(boot), "--root", str(root))
    assert again.returncode == 2 and "no provisioned config" in again.stderr


def test_first_boot_of_the_broker_host_installs_and_enables_broker_and_controller(
    bundles, tmp_path
):
    boot, root, result = first_boot(bundles / "till-01", tmp_path)
    assert "enabled mosquitto.service, kiosk-controller.service" in result.stdout
    broker_etc = root / "etc/kiosk/broker"
    assert (broker_etc / "mosquitto.conf").read_text() == (
        bundles / "till-01/broker/mosquitto.conf"
    ).read_text()
    assert oct((broker_etc / "acl").stat().st_mode)[-3:] == "644"
    passwd = (broker_etc / "passwd").stat()
    assert oct(passwd.st_mode)[-3:] == "640"
    controller = (root / "etc/kiosk/controller.pass").stat()
    assert oct(controller.st_mode)[-3:] == "640"
    if os.geteuid() == 0:
        assert (passwd.st_gid, controller.st_gid) == (107, 990)
    assert parse((root / "etc/kiosk/controller.toml").read_text()).mqtt.username == "controller"
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert os.readlink(wants / "mosquitto.service") == "/lib/systemd/system/mosquitto.service"
    assert os.readlink(wants / "kiosk-controller.service") == (
        "/etc/systemd/system/kiosk-controller.service"
    )
    assert not (boot / "kiosk").exists()


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
    assert "LABEL=kioskdata  /data            ext4   defaults,noatime,commit=5" in fstab
    assert "/data/kiosk      /var/lib/kiosk   none   bind," in fstab
    assert "/data/mosquitto  /var/lib/mosquitto none bind," in fstab
    assert "tmpfs            /var/lib/systemd tmpfs" in fstab  # logind on a read-only root
    journald = (tmp_path / "c/etc/systemd/journald.conf.d/kiosk.conf").read_text()
    assert "RuntimeMaxUse=32M" in journald and "Storage=volatile" in journald
    assert " ro " in (tmp_path / "c/boot/firmware/cmdline.txt").read_text()
    packages = (tmp_path / "c/packages.txt").read_text().split()
    # The Pi 5 needs trixie-backports' kernel (bcm2712 device trees, RP1 drivers).
    assert {"raspi-firmware", "linux-image-arm64/trixie-backports", "systemd", "python3",
            "mosquitto", "libgbm1", "libegl1", "libgles2"} <= set(packages)  # fmt: skip
    sources = (tmp_path / "c/sources.list").read_text()  # what mmdebstrap builds from
    assert "deb http://deb.debian.org/debian trixie-backports main non-free-firmware" in sources
    syntax = subprocess.run(["bash", "-n", str(REPO / "image" / "build.sh")], capture_output=True)
    assert syntax.returncode == 0
    parts = card.partitions(base_image)
    assert [p.type for p in parts] == [0x0E, 0x83, 0x83]
    assert all(p.start % (1024 * 1024) == 0 for p in parts)  # 1 MiB aligned
    shown = debugfs(base_image, parts[1], "cat /etc/hostname", tmp_path)
    assert shown.stdout == "unprovisioned\n"  # populated by mkfs.ext4 -d, no mount


def test_image_python_packages_are_pinned():
    """The image's venv installs with image/constraints.txt (`build.sh pins OUT` writes
    it from a built image): every dependency the app declares, and the GPIO library for
    the image's Python 3.13, is pinned to one version, so two builds get the same code."""
    import configparser

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (REPO / "image" / "constraints.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        assert name and version, f"constraints.txt: {line!r} is not name==version"
        pins[canonicalize_name(name)] = version
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    image_python = {"python_version": "3.13", "sys_platform": "linux", "extra": "pi"}
    options = setup["options"]["install_requires"], setup["options.extras_require"]["pi"]
    listed = "\n".join(options)
    declared = [Requirement(line) for line in listed.splitlines()
                if line.strip() and not line.strip().startswith("#")]  # fmt: skip
    for requirement in declared:
        if requirement.marker and not requirement.marker.evaluate(image_python):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in image/constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {requirement}"
    assert "adafruit-lgpio" in pins and "lgpio" not in pins


def debugfs(image: Path, part: card.Partition, request: str, tmp_path: Path):
    """debugfs on one partition of an image, cut out to a file: no mount needed."""
    piece = tmp_path / f"part{part.number}.ext4"
    with open(image, "rb") as handle, open(piece, "wb") as out:
        handle.seek(part.start)
        out.write(handle.read(part.size))
    return subprocess.run(["debugfs", "-R", request, str(piece)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_the_data_partition_is_seeded_with_its_folders_and_owners(tmp_path):
    need_tools()
    boot, data = tmp_path / "boot", tmp_path / "data"
    boot.mkdir()
    (data / "kiosk").mkdir(parents=True)
    (data / "mosquitto").mkdir()
    if os.geteuid() == 0:
        os.chown(data / "mosquitto", 107, 113)
    image = tmp_path / "seeded.img"
    parts = card.assemble(image, boot, None, boot_mib=32, root_mib=8, data_mib=8, fat=16,
                          data_dir=data)  # fmt: skip
    shown = debugfs(image, parts[2], "stat /mosquitto", tmp_path)
    assert "Type: directory" in shown.stdout, shown.stderr
    if os.geteuid() == 0:
        assert "User:   107   Group:   113" in shown.stdout
    label = subprocess.run(["e2label", str(tmp_path / "part3.ext4")], capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert label.stdout.strip() == "kioskdata"
