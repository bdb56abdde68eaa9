"""Files with secrets or PIN hashes: private when made, corrected when found readable;
provisioning refuses reserved names and control characters; the shop broker started
as root from `kiosk broker config` (no --user) reads its files and lets devices in."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kiosk import files
from kiosk.ledger import staff
from kiosk.ledger.core import Ledger
from tests.mqtt_env import free_port, wait_until

REPO = Path(__file__).parent.parent
SITE = REPO / "provisioning" / "site.example.toml"
DEVICES = REPO / "provisioning" / "devices.example.csv"
HEADER = "device,role,printer,scanner,keymap,drawer\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def kiosk(*args, env=None, stdin=None):
    environ = {k: v for k, v in os.environ.items() if k != "KIOSK_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "kiosk.cli", *args],
        capture_output=True, text=True, timeout=300, input=stdin, env={**environ, **(env or {})},
    )  # fmt: skip


def one_line_error(result, text: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert text in result.stderr, result.stderr


def need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is missing: apt-get install {package} (./dev.sh test does)")


# ---------------------------------------------------------------- kiosk.files


def test_private_files_are_made_private_and_corrected(tmp_path):
    old = os.umask(0)  # the most careless umask: nothing may depend on it
    try:
        made = tmp_path / "new"
        assert files.create_private(made) and mode(made) == 0o600
        group = tmp_path / "group"
        assert files.create_private(group, 0o640) and mode(group) == 0o640
        loose = tmp_path / "loose"
        loose.write_text("x")
        loose.chmod(0o666)
        assert not files.create_private(loose) and mode(loose) == 0o600
        assert loose.read_text() == "x"  # corrected, not truncated
        files.write_private(loose, "secret\n")
        assert mode(loose) == 0o600 and loose.read_text() == "secret\n"
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
        with pytest.raises(FileExistsError):
            files.write_private(loose, "other\n", replace=False)
        assert loose.read_text() == "secret\n"
        assert not files.restrict(tmp_path / "missing")
        assert not files.restrict(tmp_path)  # folders are not files
    finally:
        os.umask(old)
    with pytest.raises(OSError, match="not a regular file"):
        files.write_private(Path("/dev/null"), "x")


# ---------------------------------------------------------------- the ledger and the PIN key


def test_a_new_ledger_and_its_wal_and_shm_are_private(config):
    old = os.umask(0o022)
    try:
        with Ledger.open(config) as ledger:
            staff.add(ledger, "S1", "Sam", "supervisor", "1234", by=None)
            path = ledger.path
            assert mode(path) == 0o600
            for companion in ("-wal", "-shm"):  # SQLite gives them the main file's mode
                assert mode(Path(f"{path}{companion}")) == 0o600, companion
            assert mode(config.ledger.pin_key_path) == 0o600
    finally:
        os.umask(old)


def test_an_existing_world_readable_ledger_is_corrected_and_still_works(config, tmp_path):
    with Ledger.open(config) as ledger:
        staff.add(ledger, "S1", "Sam", "supervisor", "1234", by=None)
    path = config.ledger.path
    # As an older version left it, with a reader holding the WAL open.
    path.chmod(0o644)
    reader = sqlite3.connect(path)
    reader.execute("SELECT count(*) FROM staff").fetchone()
    for companion in ("-wal", "-shm"):
        Path(f"{path}{companion}").chmod(0o644)
    try:
        with Ledger.open(config) as ledger:
            assert mode(path) == 0o600
            for companion in ("-wal", "-shm"):
                assert mode(Path(f"{path}{companion}")) == 0o600, companion
            assert staff.login(ledger, "1234").code == "S1"
            # The publisher's own sqlite3 connection (same user) reads it as before.
            from kiosk.mqtt.outbox import OutboxStore

            store = OutboxStore(path)
            assert store.pending_after(0, 10) == []
            store.close()
        assert reader.execute("SELECT count(*) FROM staff").fetchone() == (1,)
    finally:
        reader.close()


def test_root_making_the_ledger_or_key_leaves_them_to_the_owner_of_their_folder(config):
    """A technician's `kiosk staff add` as root on a device where /var/lib/kiosk is the
    kiosk user's: the ledger, its -wal/-shm and the PIN key it makes stay the kiosk
    user's, or the app could no longer open them."""
    if os.geteuid() != 0:
        pytest.fail("this test checks files made by root: run the tests as root")
    folder = config.ledger.path.parent
    os.chown(folder, 4242, 4243)  # the kiosk user of the device
    with Ledger.open(config) as ledger:
        staff.add(ledger, "S1", "Sam", "supervisor", "1234", by=None)
        made = [ledger.path, Path(f"{ledger.path}-wal"), Path(f"{ledger.path}-shm")]
        made.append(config.ledger.pin_key_path)
        for path in made:
            info = path.stat()
            assert (info.st_uid, info.st_gid, mode(path)) == (4242, 4243, 0o600), path


@pytest.fixture
def env(tmp_path):
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'[device]\nid = "till-01"\nstore = "s1"\n[ledger]\npath = "{tmp_path / "l.db"}"\n'
    )
    return {"KIOSK_CONFIG": str(config)}


def test_staff_cli_makes_ledger_and_key_private_and_broken_keys_are_one_line(env, tmp_path):
    added = kiosk("staff", "add", "S1", "--name", "Sam", "--role", "supervisor", env=env,
                  stdin="1234\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert mode(tmp_path / "l.db") == 0o600 and mode(tmp_path / "pin.key") == 0o600
    (tmp_path / "pin.key").write_text("zz\n")
    broken = kiosk("staff", "add", "C1", "--name", "Cat", "--role", "cashier", env=env,
                   stdin="5678\n")  # fmt: skip
    one_line_error(broken, "pin.key: not a PIN key (64 hex digits)")
    verified = kiosk("ledger", "verify", env=env)
    assert verified.returncode == 0, verified.stderr


# ---------------------------------------------------------------- broker passwords


def test_password_out_is_private_new_or_existing(env, tmp_path):
    need("mosquitto_passwd", "mosquitto")
    folder = tmp_path / "broker"
    assert kiosk("broker", "config", str(folder), "--user", "root", env=env).returncode == 0
    assert mode(folder / "passwd") == 0o600
    new = tmp_path / "new.pass"
    made = kiosk("broker", "add-device", "till-09", "--dir", str(folder), "--password-out",
                 str(new), env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert mode(new) == 0o600
    existing = tmp_path / "existing.pass"
    existing.write_text("old\n")
    existing.chmod(0o644)
    inode = existing.stat().st_ino
    made = kiosk("broker", "add-device", "till-10", "--dir", str(folder), "--password-out",
                 str(existing), env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    # A new private file renamed over the old one: the secret never sat in the 0644 inode.
    assert mode(existing) == 0o600 and existing.stat().st_ino != inode
    assert len(existing.read_text().strip()) >= 20
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    one_line_error(
        kiosk("broker", "add-device", "till-11", "--dir", str(folder), "--password-out",
              str(tmp_path / "no" / "such" / "x.pass"), env=env),
        "not a file in an existing folder",
    )  # fmt: skip
    one_line_error(
        kiosk("broker", "add-device", "Controller", "--dir", str(folder), env=env), "reserved"
    )
    users = [line.split(":")[0] for line in (folder / "passwd").read_text().split()]
    assert users == ["till-09", "till-10"]


def test_broker_started_as_root_from_the_generated_config_lets_devices_in(env):
    """`kiosk broker config` without --user, run as root (as the tests run), then the
    real mosquitto started as root from it: it drops to the mosquitto user, reads the
    password file and takes logins with the credentials add-device gave."""
    need("mosquitto", "mosquitto")
    import paho.mqtt.client as paho

    if os.geteuid() != 0:
        pytest.fail("this test checks a broker started as root: run the tests as root")
    base = Path(tempfile.mkdtemp(prefix="kiosk-broker-"))  # pytest's tmp is 0700 root
    base.chmod(0o755)
    folder = base / "broker"
    port = free_port()
    process = None
    try:
        made = kiosk("broker", "config", str(folder), "--port", str(port), "--listen",
                     "127.0.0.1", env=env)  # fmt: skip
        assert made.returncode == 0, made.stderr
        out = base / "till-01.pass"
        added = kiosk("broker", "add-device", "till-01", "--dir", str(folder),
                      "--password-out", str(out), env=env)  # fmt: skip
        assert added.returncode == 0, added.stderr
        runner = files.user_ids("mosquitto") or files.user_ids("nobody")
        passwd = (folder / "passwd").stat()
        assert stat.S_IMODE(passwd.st_mode) == 0o640 and passwd.st_gid == runner[1]
        assert not stat.S_IMODE(passwd.st_mode) & 0o007  # never for others
        process = subprocess.Popen(["mosquitto", "-c", str(folder / "mosquitto.conf")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip

        def listening():
            if process.poll() is not None:
                raise AssertionError(f"mosquitto exited: {process.stderr.read().decode()}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listening, 10, what="mosquitto to listen")

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

        assert login("till-01", out.read_text().strip()) == 0
        assert login("till-01", "wrong") != 0
        log = (folder / "mosquitto.log").read_text()
        assert "Unable to open" not in log and "Error" not in log, log
    finally:
        if process is not None:
            process.terminate()
            process.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def test_broker_config_warns_in_one_line_when_its_user_cannot_reach_the_folder(env, tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test checks a broker started as root: run the tests as root")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    warned = kiosk("broker", "config", str(locked / "broker"), env=env)
    assert warned.returncode == 0 and "Traceback" not in warned.stderr  # written all the same
    runner = files.user_ids("mosquitto")
    blocked = files.can_reach(locked, *runner)  # pytest's own 0700 folders come first
    assert blocked is not None and str(locked).startswith(str(blocked))
    assert warned.stderr.splitlines() == [
        f"kiosk: warning: mosquitto drops to user mosquitto, who cannot enter {blocked}: put the "
        "broker folder where mosquitto can (e.g. /etc/kiosk/broker), or pass --user root"
    ]
    quiet = kiosk("broker", "config", str(locked / "b2"), "--user", "root", env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""


# ---------------------------------------------------------------- provisioning


def build(tmp_path, site: Path = SITE, devices: Path = DEVICES):
    return kiosk("provision", "build", str(site), str(devices), "--out", str(tmp_path / "out"),
                  "--broker-dir", str(tmp_path / "broker"))  # fmt: skip


def test_bundles_are_private(tmp_path):
    need("mosquitto_passwd", "mosquitto")
    made = build(tmp_path)
    assert made.returncode == 0, made.stderr
    for device in ("till-01", "sco-01", "cart-01"):
        bundle = tmp_path / "out" / device
        assert mode(bundle) == 0o700
        for name in ("firstboot.toml", "mqtt.pass"):  # the Wi-Fi key, the broker password
            assert mode(bundle / name) == 0o600, (device, name)
    host = tmp_path / "out" / "till-01"
    assert mode(host / "controller.pass") == 0o600 and mode(host / "broker" / "passwd") == 0o600
    assert not mode(tmp_path / "broker" / "passwd") & 0o007
    # An older build left firstboot.toml readable: building again corrects it.
    (host / "firstboot.toml").chmod(0o644)
    again = build(tmp_path)
    assert again.returncode == 0, again.stderr
    assert mode(host / "firstboot.toml") == 0o600


LINE_8, LINE_9 = "line 8: wifi.ssid: ", "line 9: wifi.psk: "


@pytest.mark.parametrize(
    ("wifi", "problem"),
    [
        ('ssid = "Shop\\nNet"\npsk = "change-me-please"\n', LINE_8 + "control character U+000A"),
        ('ssid = "ShopNet"\npsk = "change-me\\u0000please"\n', LINE_9 + "control character U+0000"),
        ('ssid = "Shop\\u0085"\npsk = "change-me-please"\n', LINE_8 + "control character U+0085"),
        ('ssid = "ShopNet"\npsk = """change-me\nplease"""\n', LINE_9 + "control character U+000A"),
        ('ssid = "ShopNet"\npsk = "change-me-pléase"\n', LINE_9 + "a Wi-Fi key is 8-63"),
        ('ssid = "ÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜ"\npsk = "change-me-please"\n', LINE_8 + "at most 32 bytes"),
    ],
)  # fmt: skip
def test_control_characters_in_the_site_file_are_refused_in_one_line(tmp_path, wifi, problem):
    site = tmp_path / "site.toml"
    site.write_text(f'[site]\nstore = "s"\n\n[broker]\nhost = "h"\n\n[wifi]\n{wifi}')
    result = build(tmp_path, site=site)
    one_line_error(result, f"{site}: {problem}")
    assert not (tmp_path / "out").exists() and not (tmp_path / "broker").exists()


def test_control_characters_anywhere_in_the_site_file_are_refused(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text(SITE.read_text().replace('"1 High Street"', '"1 High\\u001bStreet"'))
    where = next(n for n, text in enumerate(SITE.read_text().splitlines(), 1) if "1 High" in text)
    problem = f"line {where}: defaults.checkout.receipt_header: control character U+001B"
    one_line_error(build(tmp_path, site=site), problem)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("controller,staffed,none,x,us,none", "line 2: device 'controller' is reserved"),
        ("CONTROLLER,staffed,none,x,us,none", "line 2: device 'CONTROLLER' is reserved"),
        ('till-01,staffed,none,"Honey\nwell",us,none', "line 3: scanner: control character U+000A"),
        ("till-01,staffed,none,Honey\x07well,us,none", "line 2: scanner: control character U+0007"),
        ("till-01,staffed,network:lp\x7f,x,us,none", "line 2: printer: control character U+007F"),
        ("till\x00-01,staffed,none,x,us,none", "line 2: device: control character U+0000"),
        ("till-01,staffed,none,x,us\x1b,none", "line 2: keymap: control character U+001B"),
    ],
)  # fmt: skip
def test_reserved_names_and_control_characters_in_the_device_list(tmp_path, row, problem):
    need("mosquitto_passwd", "mosquitto")
    devices = tmp_path / "devices.csv"
    devices.write_text(HEADER + row + "\n", newline="")
    site = tmp_path / "site.toml"
    site.write_text('[site]\nstore = "s"\n[broker]\nhost = "h"\n')
    one_line_error(build(tmp_path, site=site, devices=devices), f"{devices}: {problem}")
    assert not (tmp_path / "out").exists() and not (tmp_path / "broker").exists()


def test_invalid_utf8_in_provisioning_files_is_one_line(tmp_path):
    devices = tmp_path / "devices.csv"
    devices.write_bytes(HEADER.encode() + b"till-01,staffed,none,Caf\xe9,us,none\n")
    one_line_error(build(tmp_path, devices=devices), f"{devices}: line 2: not UTF-8 text")
    site = tmp_path / "site.toml"
    site.write_bytes(b'[site]\nstore = "s"\n[broker]\nhost = "h\xff"\n')
    one_line_error(build(tmp_path, site=site), f"{site}: line 4: not UTF-8 text")


def test_wifi_names_and_keys_reach_networkmanager_as_written(tmp_path):
    """Spaces, backslashes and semicolons are legal in SSIDs and passphrases: the
    profile must give NetworkManager (GLib key file rules) back exactly what was written."""
    need("mosquitto_passwd", "mosquitto")
    from kiosk.provision import firstboot

    site = tmp_path / "site.toml"
    site.write_text(
        '[site]\nstore = "s"\n[broker]\nhost = "h"\n'
        "[wifi]\nssid = ' Shop;Net\\ '\npsk = ' pass\\word; '\n"
    )
    devices = tmp_path / "devices.csv"
    devices.write_text(HEADER + "sco-01,self-checkout,none,x,us,none\n")
    made = build(tmp_path, site=site, devices=devices)
    assert made.returncode == 0, made.stderr
    boot, root = tmp_path / "bootfs", tmp_path / "rootfs"
    shutil.copytree(tmp_path / "out" / "sco-01", boot / "kiosk")
    (root / "etc").mkdir(parents=True)
    firstboot.apply(boot, root)
    profile = root / "etc/NetworkManager/system-connections/kiosk-wifi.nmconnection"
    assert mode(profile) == 0o600
    values = dict(line.split("=", 1) for line in profile.read_text().splitlines() if "=" in line)
    ssid = " Shop;Net\\ "
    assert values["ssid"] == "".join(f"{b};" for b in ssid.encode())  # NM's byte-list form
    assert unescape_keyfile(values["psk"]) == " pass\\word; "
    assert unescape_keyfile(values["id"]) == ssid


def unescape_keyfile(value: str) -> str:
    """GLib's g_key_file_get_string unescaping (\\s \\n \\t \\r \\\\)."""
    out, chars = [], iter(value)
    for char in chars:
        if char == "\\":
            nxt = next(chars)
            out.append({"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}[nxt])
        else:
            out.append(char)
    return "".join(out)


def test_first_boot_refuses_control_characters_even_in_a_hand_made_bundle(tmp_path):
    from kiosk.provision import firstboot

    boot, root = tmp_path / "bootfs", tmp_path / "rootfs"
    (boot / "kiosk").mkdir(parents=True)
    (boot / "kiosk" / "kiosk.toml").write_text('[device]\nid = "sco-01"\n')
    (boot / "kiosk" / "firstboot.toml").write_text('[wifi]\nssid = "a\\nb"\npsk = "12345678"\n')
    root.mkdir()
    with pytest.raises(firstboot.FirstBootError, match="wifi.ssid: a control character"):
        firstboot.apply(boot, root)
    assert list(root.iterdir()) == []
