"""systemd units pass `systemd-analyze verify` with no output at all, and the app and
the controller speak sd_notify: READY, then watchdog pings from their main loops."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.mqtt_env import Mosquitto, free_port, wait_until
from tests.ui_driver import KioskUI, Xvfb

UNITS = Path(__file__).parent.parent / "systemd"


def stub(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


@pytest.fixture
def unit_root(tmp_path):
    """A root with systemd's own units, ours installed, and every command they run."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd")
    root = tmp_path / "root"
    shutil.copytree("/lib/systemd/system", root / "lib/systemd/system", symlinks=True)
    system = root / "etc/systemd/system"
    shutil.copytree(UNITS, system)
    for unit in [*system.rglob("*.service"), *system.rglob("*.conf"),
                 *(root / "lib/systemd/system").glob("mosquitto.service")]:  # fmt: skip
        for command in re.findall(r"^Exec\w*=[-@:+!]*(/\S+)", unit.read_text(), re.M):
            stub(root / command.lstrip("/"))
    return root


@pytest.mark.parametrize(
    "unit", ["kiosk.service", "kiosk-controller.service", "kiosk-firstboot.service"]
)
def test_units_verify_cleanly(unit_root, unit):
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={unit_root}", unit],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result


def test_mosquitto_drop_in_verifies(unit_root):
    if not (unit_root / "lib/systemd/system/mosquitto.service").exists():
        pytest.fail("mosquitto.service is missing: apt-get install mosquitto")
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={unit_root}", "mosquitto.service"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result
    drop_in = unit_root / "etc/systemd/system/mosquitto.service.d/kiosk.conf"
    assert "ExecStart=/usr/sbin/mosquitto -c /etc/kiosk/broker/mosquitto.conf" in (
        drop_in.read_text()
    )


def test_units_keep_hardware_reachable_and_are_hardened():
    kiosk = (UNITS / "kiosk.service").read_text()
    for needed in ("Type=notify", "WatchdogSec=", "Restart=always", "User=kiosk",
                   "SupplementaryGroups=input gpio lp dialout", "DeviceAllow=char-input rw",
                   "DeviceAllow=char-gpiochip rw", "DeviceAllow=char-usb rw",
                   "ProtectSystem=strict", "NoNewPrivileges=yes"):  # fmt: skip
        assert needed in kiosk, needed


def unit_lists(text: str, key: str) -> set[str]:
    return {name for line in re.findall(rf"^{key}=(.*)$", text, re.M) for name in line.split()}


def test_the_selling_screen_waits_for_nothing_it_can_do_without():
    """The boot's critical path (README, "Boot to the selling screen"): the app waits
    for its file systems and first boot only: not for the network (it sells offline),
    not for RAUC or the update check (which watches it from beside it)."""
    app = (UNITS / "kiosk.service").read_text()
    assert unit_lists(app, "After") == {"local-fs.target", "kiosk-firstboot.service"}
    assert not unit_lists(app, "Wants") | unit_lists(app, "Requires")
    for unit in [*UNITS.glob("*.service"), *(UNITS.parent / "image/systemd").glob("*.service")]:
        before = unit_lists(unit.read_text(), "Before")
        if unit.name != "kiosk-firstboot.service":
            assert "kiosk.service" not in before, f"{unit.name} holds the app back"
        assert not re.search(r"^ExecStartPre=.*kiosk ", unit.read_text(), re.M), unit.name


class NotifySocket:
    def __init__(self, folder: Path):
        self.path = folder / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def collect(self, until, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(self.messages):
            with contextlib.suppress(TimeoutError):
                self.messages.append(self.sock.recv(4096).decode())
        return self.messages


def test_app_says_ready_and_feeds_the_watchdog(tmp_path):
    xvfb = Xvfb()
    short = Path(os.environ.get("TMPDIR", "/tmp")) / f"kn{os.getpid()}"  # AF_UNIX paths are short
    short.mkdir(exist_ok=True)
    notify = NotifySocket(short)
    ui = KioskUI(
        xvfb, tmp_path, "watchdog",
        env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"},
    )  # fmt: skip
    try:
        messages = notify.collect(lambda m: sum("WATCHDOG=1" in x for x in m) >= 3, 15)
        assert any(m.startswith("READY=1") for m in messages)
        assert sum("WATCHDOG=1" in m for m in messages) >= 3
    finally:
        ui.stop()
        xvfb.stop()
        shutil.rmtree(short, ignore_errors=True)


def test_the_app_says_ready_before_its_shop_links_start_and_they_do_start(tmp_path):
    """`kiosk run` on a real config (not the demo): READY when the selling screen shows,
    then the shop's links (kiosk/shoplinks.py): the outbox publisher's online status
    reaches the broker after READY, not before it (they are off the boot's critical path)."""
    import paho.mqtt.client as mqtt  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    from kiosk.mqtt import topics  # noqa: PLC0415

    xvfb = Xvfb()
    broker = Mosquitto(tmp_path / "broker", ["till-07", "controller"]).start()
    short = Path("/tmp") / f"kl{os.getpid()}"
    short.mkdir(exist_ok=True)
    notify = NotifySocket(short)
    seen: list[str] = []
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watcher")
    watcher.username_pw_set("controller", broker.passwords["controller"])
    watcher.on_message = lambda c, u, m: seen.append(
        f"{'online' if topics.parse_kiosk_status(m.payload).online else 'offline'} "
        f"after {len(notify.messages)} notify message(s)"
    )
    watcher.on_connect = lambda c, u, f, rc, p: c.subscribe(
        topics.Topics("shop/store-042").kiosk_status("till-07"), 1
    )
    watcher.connect("127.0.0.1", broker.port)
    watcher.loop_start()
    process = broker.spawn(
        "run", "till-07", tmp_path,
        f'[ledger]\npath = "{tmp_path / "ledger.db"}"\n[scanner]\nkind = "none"\n'
        '[drawer]\nkind = "none"\n[printer]\nkind = "none"\n',
        env={"NOTIFY_SOCKET": str(notify.path), "DISPLAY": xvfb.display, "KIVY_NO_FILELOG": "1",
             "XDG_DATA_HOME": str(tmp_path / "data"), "KIVY_HOME": str(tmp_path / "kivy")},
    )  # fmt: skip
    try:
        messages = notify.collect(lambda m: any(x.startswith("READY=1") for x in m), 60)
        assert any(m.startswith("READY=1") for m in messages), (messages, process.poll())
        ready_at = len(notify.messages)
        wait_until(lambda: seen, 30, what="the kiosk's status on the broker")
        assert seen[0].startswith("online"), seen
        assert int(seen[0].split()[2]) >= ready_at, f"links started before READY: {seen}"
    finally:
        process.terminate()
        process.wait(10)
        watcher.loop_stop()
        watcher.disconnect()
        broker.stop()
        xvfb.stop()
        shutil.rmtree(short, ignore_errors=True)


def test_controller_says_ready_and_feeds_the_watchdog(tmp_path):
    broker = Mosquitto(tmp_path / "broker", ["controller"]).start()
    short = Path("/tmp") / f"kc{os.getpid()}"
    short.mkdir(exist_ok=True)
    notify = NotifySocket(short)
    process = broker.spawn(
        "controller", "controller", tmp_path, f'[controller]\ndatabase = "{tmp_path / "c.db"}"\n',
        env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"},
    )  # fmt: skip
    try:
        messages = notify.collect(lambda m: sum("WATCHDOG=1" in x for x in m) >= 2, 20)
        assert any(m.startswith("READY=1") for m in messages), messages
        assert sum("WATCHDOG=1" in m for m in messages) >= 2
    finally:
        process.terminate()
        process.wait(10)
        broker.stop()
        shutil.rmtree(short, ignore_errors=True)
    wait_until(lambda: process.returncode is not None, 5, what="the controller to stop")


REPO = UNITS.parent


def test_image_recipe_wheel_step_from_a_fresh_clone(tmp_path):
    """`cd image && make image` as the README says, on a fresh clone: its first step, the
    app's wheel, lands where the recipe looks for it with the Makefile's default relative
    OUT=build (image/build), with OUT relative to another folder, and with OUT absolute.
    (It once built into the repository root's build/wheels and then failed at once.)
    Runs the committed recipe (a clone of HEAD), without root or the arm64 tools."""
    clone = tmp_path / "clone"
    cloned = subprocess.run(["git", "clone", "-q", str(REPO), str(clone)],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert cloned.returncode == 0, cloned.stderr
    assert not (clone / "image" / "build").exists()

    def wheel_in(folder: Path) -> Path:
        wheels = list((folder / "wheels").glob("kiosk-*.whl"))
        assert len(wheels) == 1, wheels
        return wheels[0]

    made = subprocess.run(["make", "-C", str(clone / "image"), "wheel"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    wheel = wheel_in(clone / "image" / "build")
    assert str(wheel) in made.stdout  # the path build.sh hands to the image step
    assert not (clone / "build" / "wheels").exists()
    names = zipfile.ZipFile(wheel).namelist()
    assert "kiosk/ledger/money.py" in names and "kiosk/screens/layout.kv" in names
    # every data file the app reads at run time (setup.cfg package_data, one per line)
    for data in (
        "kiosk/demo/catalog.csv",
        "kiosk/mqtt/web/templates/base.html",
        "kiosk/mqtt/web/static/uPlot.iife.min.js",
        "kiosk/locale/kiosk.pot",
        "kiosk/locale/de/LC_MESSAGES/kiosk.po",
        "kiosk/locale/fr/LC_MESSAGES/kiosk.po",
    ):
        assert data in names, data
    # Relative to where build.sh is started (the repository's root here), and absolute.
    relative = subprocess.run(["bash", "image/build.sh", "wheel", "out/rel"], cwd=clone,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    assert relative.returncode == 0, relative.stderr
    wheel_in(clone / "out" / "rel")
    absolute = tmp_path / "abs"
    made = subprocess.run(["make", "-C", str(clone / "image"), "wheel", f"OUT={absolute}"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    wheel_in(absolute)


# ---------------------------------------------------------------- the boot test's power cut

POWERCUT_SH = REPO / "image" / "powercut.sh"


def _powercut():
    """image/powercut.py, the boot test's host side (image/ is not a package)."""
    spec = importlib.util.spec_from_file_location("powercut", REPO / "image" / "powercut.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_power_cut_session_reports_each_committed_sale(tmp_path):
    """The boot test's selling session (image/powercut.sh, which runs inside the VM), run
    here on a scratch ledger with till-01's provisioned config and a real Mosquitto: each
    sale appears as a PAID line once committed, the kiosk's own publisher sends them and
    its birth status to the test's broker, and the check mode lists exactly the ledger's
    sales and verifies. The host side (image/powercut.py) reads those lines."""
    kiosk = Path(sys.executable).parent / "kiosk"
    site = REPO / "provisioning"
    built = subprocess.run([str(kiosk), "provision", "build", str(site / "site.example.toml"),
                            str(site / "devices.example.csv"), "--out", str(tmp_path / "bundles"),
                            "--broker-dir", str(tmp_path / "broker")],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert built.returncode == 0, built.stderr
    if shutil.which("mosquitto") is None:
        pytest.fail("mosquitto is not installed: apt-get install mosquitto")
    port = free_port()
    (tmp_path / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    broker = subprocess.Popen(["mosquitto", "-c", str(tmp_path / "mosquitto.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    log = tmp_path / "mqtt.log"
    subscriber = None
    sync_pid = None
    try:

        def listening():
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listening, 10, what="mosquitto to listen")
        subscriber = subprocess.Popen([sys.executable, str(REPO / "image" / "powercut.py"),
                                       "subscribe", str(port), str(log)])  # fmt: skip
        probe = subprocess.run([sys.executable, "-c", (
            "import sys, paho.mqtt.publish as p; "
            "p.single('shop/probe/kiosk/probe/status', '{}', qos=1, retain=True, "
            "hostname='127.0.0.1', port=int(sys.argv[1]))"), str(port)],
            capture_output=True, text=True, timeout=30)  # fmt: skip
        assert probe.returncode == 0, probe.stderr
        wait_until(lambda: log.exists() and "probe" in log.read_text(), 20,
                   what="the subscriber to subscribe")  # fmt: skip
        console = tmp_path / "console"
        env = {**os.environ, "KIOSK": str(kiosk), "PYTHON": sys.executable,
               "CONFIG": str(tmp_path / "bundles" / "till-01" / "kiosk.toml"),
               "DB": str(tmp_path / "ledger.db"), "CONSOLE": str(console),
               "RUN": str(tmp_path / "run"), "BROKER_HOST": "127.0.0.1",
               "BROKER_PORT": str(port), "SALES": "4", "WAIT_FOR": "", "AS": ""}  # fmt: skip
        sold = subprocess.run(["sh", str(POWERCUT_SH), "sell"], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        sync_pid = int((tmp_path / "run" / "sync.pid").read_text())
        assert sold.returncode == 0, sold.stderr
        text = console.read_text()
        receipts = ["till-01-000001", "till-01-000002", "till-01-000003", "till-01-000004"]
        assert [line for line in text.splitlines() if line.startswith("PAID")] == [
            f"PAID {number} #" for number in receipts
        ], text
        powercut = _powercut()
        assert powercut.paid(text) == receipts
        with contextlib.closing(sqlite3.connect(tmp_path / "ledger.db")) as db:
            rows = db.execute("SELECT number, kind, total, change FROM txn ORDER BY id").fetchall()
        # Every third sale is two items paid with 5.00: 2.00, change 3.00.
        assert rows == [
            ("till-01-000001", "sale", "1.00", "0.00"),
            ("till-01-000002", "sale", "1.00", "0.00"),
            ("till-01-000003", "sale", "2.00", "3.00"),
            ("till-01-000004", "sale", "1.00", "0.00"),
        ]

        def published():
            events = powercut.messages(log.read_text())
            txns = {body.get("txn") for _, _, topic, body in events if topic.endswith("/stock")}
            status = "shop/store-042/kiosk/till-01/status"
            online = [body for _, _, topic, body in events if topic == status and body["online"]]
            return txns >= set(receipts) and online

        wait_until(published, 60, what="the sales and the birth status at the test's broker")
        console.write_text("")
        checked = subprocess.run(["sh", str(POWERCUT_SH), "check"], env=env,
                                 capture_output=True, text=True, timeout=300)  # fmt: skip
        assert checked.returncode == 0, checked.stderr
        assert powercut.ledger(console.read_text()) == (receipts, "ok"), console.read_text()
    finally:
        for process in (subscriber, broker):
            if process is not None:
                process.kill()
                process.wait(10)
        if sync_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(sync_pid, 9)


def test_power_cut_verdict():
    """What the boot test concludes from its logs, on logs written out by hand."""
    powercut = _powercut()
    sell = (
        "\x1b[0;32mPAID till-01-000001 #\x1b[0m\r\nPAID till-01-000002 #\r\n"
        "PAID till-01-000003 [  OK  ] Started\r\n"
    )  # a broken line is no receipt
    check = "LEDGER till-01-000001 #\nLEDGER till-01-000002 #\nLEDGER till-01-000003 #\nVERIFY ok\n"
    status = "shop/store-042/kiosk/till-01/status"
    mqtt = (f'100.0 0 {status} {{"online": true}}\n'
            '100.2 0 shop/store-042/kiosk/till-01/stock {"txn": "till-01-000001"}\n'
            f'146.0 0 {status} {{"online": false}}\n')  # fmt: skip
    assert powercut.paid(sell) == ["till-01-000001", "till-01-000002"]
    assert powercut.verdict(sell, check, mqtt, 100.5, 30) == []
    lost = powercut.verdict(sell, "LEDGER till-01-000001 #\nVERIFY ok\n", mqtt, 100.5, 30)
    assert lost == ["reported paid, missing after the cut: till-01-000002"]
    assert powercut.verdict(sell, check.replace("VERIFY ok", "VERIFY failed"), mqtt, 100.5, 30) == [
        "ledger verify failed after the cut"
    ]
    assert powercut.verdict(sell, check.replace("VERIFY ok", ""), mqtt, 100.5, 30) == [
        "the guest never reported ledger verify"
    ]
    closed = mqtt.replace("146.0 0", "100.9 0")
    assert powercut.verdict(sell, check, closed, 100.5, 30) == [
        "offline 0.4 s after the cut: the connection was closed, not silent "
        "(not what a power cut does)"
    ]
    assert powercut.verdict(sell, check, mqtt.replace("146.0 0", "190.0 0"), 100.5, 30) == [
        "offline only 89.5 s after the cut (keepalive 30 s)"
    ]
    no_will = "\n".join(mqtt.splitlines()[:2])
    assert powercut.verdict(sell, check, no_will, 100.5, 30) == [
        "no offline status (last will) within 75 s of the cut"
    ]
    unsent = mqtt.replace("till-01-000001", "till-01-000009")
    assert powercut.verdict(sell, check, unsent, 100.5, 30) == [
        "sent to the broker, missing after the cut: till-01-000009"
    ]
    assert powercut.verdict("", check, "", 100.5, 30) == [
        "no sale was reported paid before the cut",
        "the host's broker never saw the kiosk online before the cut",
        "no offline status (last will) within 75 s of the cut",
    ]
