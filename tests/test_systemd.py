"""systemd units pass `systemd-analyze verify` with no output at all, and the app and
the controller speak sd_notify: READY, then watchdog pings from their main loops."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from tests.mqtt_env import Mosquitto, wait_until
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
