"""The A/B slot switch: RAUC's custom bootloader backend for the Pi firmware's tryboot
(kiosk.update.tryboot) against a boot selection folder, the firmware's choice it leads
to, the boot check's verdicts (kiosk.update.manager), and real RAUC (its service on a
private D-Bus, file-backed slots) installing a bundle and marking slots through our
backend."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.update import UpdateError, bundle, layout, tryboot
from kiosk.update.manager import AppState, Manager, decide
from kiosk.update.settings import UpdateConfig
from tests.mqtt_env import wait_until

REPO = Path(__file__).parent.parent


@pytest.fixture
def card(tmp_path, monkeypatch):
    """A boot selection partition as the image ships it: slot A committed."""
    boot = tmp_path / "bootsel"
    boot.mkdir()
    (boot / "autoboot.txt").write_text(tryboot.autoboot_text("A"))
    monkeypatch.setenv("KIOSK_BOOTSEL", str(boot))
    monkeypatch.setenv("KIOSK_FIRMWARE_DT", str(tmp_path / "no-firmware-node"))
    monkeypatch.setenv("KIOSK_CMDLINE", str(tmp_path / "cmdline"))
    return boot


def booted(card: Path, slot: str, trial: bool = False) -> None:
    (card.parent / "cmdline").write_text(
        f"console=ttyAMA0 rauc.slot={slot}{' kiosk.tryboot=1' if trial else ''}\n"
    )


def backend(*args: str) -> subprocess.CompletedProcess:
    """The backend as RAUC runs it: a program with the command as its arguments."""
    return subprocess.run([sys.executable, "-m", "kiosk.update.tryboot", *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO)  # fmt: skip


def firmware(card: Path, tryboot_flag: bool) -> str:
    """The slot the Pi firmware starts, given autoboot.txt and its one-shot flag."""
    part = tryboot.firmware_choice((card / "autoboot.txt").read_text(), tryboot_flag)
    return tryboot.slot_of_partition(part)


def test_backend_interface_as_rauc_calls_it(card):
    booted(card, "A")
    assert backend("get-primary").stdout == "A\n"
    assert backend("get-state", "B").stdout == "good\n"
    assert backend("get-current").stdout == "A\n"
    # an update was written into B: RAUC marks it bad while writing, primary after
    assert backend("set-state", "B", "bad").returncode == 0
    assert backend("get-state", "B").stdout == "bad\n"
    assert backend("set-primary", "B").returncode == 0
    assert backend("get-primary").stdout == "B\n"
    assert backend("get-state", "B").stdout == "good\n"
    text = (card / "autoboot.txt").read_text()
    assert tryboot.parse_autoboot(text) == {"all": 2, "tryboot": 3} and "tryboot_a_b=1" in text
    # a normal boot still starts A; the tryboot reboot starts B once
    assert firmware(card, tryboot_flag=False) == "A"
    assert firmware(card, tryboot_flag=True) == "B"
    # B sold: mark-good of the booted trial slot commits it
    booted(card, "B", trial=True)
    assert backend("set-state", "B", "good").returncode == 0
    assert tryboot.parse_autoboot((card / "autoboot.txt").read_text()) == {"all": 3, "tryboot": 2}
    assert backend("get-primary").stdout == "B\n"
    assert firmware(card, tryboot_flag=False) == "B"


def test_backend_cancel_and_mark_bad(card):
    booted(card, "A")
    backend("set-primary", "B")
    assert backend("set-primary", "A").returncode == 0  # back to the committed one: cancel
    assert backend("get-primary").stdout == "A\n"
    backend("set-primary", "B")
    backend("set-state", "B", "bad")  # the trial failed: nothing pending, A stays
    assert backend("get-primary").stdout == "A\n" and firmware(card, True) == "B"
    assert tryboot.Backend(card).state().pending is None
    # the committed slot marked bad while the other is good: the other is committed
    backend("set-state", "B", "good")
    backend("set-state", "A", "bad")
    assert firmware(card, tryboot_flag=False) == "B"
    # both bad: nothing to go to, A stays committed and says bad
    backend("set-state", "B", "bad")
    assert backend("get-state", "B").stdout == "bad\n"


def test_backend_errors_are_one_line(card, tmp_path):
    for args, code in ((["set-primary", "C"], 1), (["frobnicate"], 2), (["get-state"], 2)):
        result = backend(*args)
        assert result.returncode == code and len(result.stderr.strip().splitlines()) == 1
    (card / "autoboot.txt").unlink()
    result = backend("get-primary")
    assert result.returncode == 1 and "not an A/B card" in result.stderr
    (card.parent / "cmdline").write_text("console=ttyAMA0\n")
    assert "cannot tell the booted slot" in backend("get-current").stderr


def test_firmware_device_tree_node_wins(card, tmp_path, monkeypatch):
    node = tmp_path / "chosen-bootloader"
    node.mkdir()
    (node / "partition").write_bytes((3).to_bytes(4, "big"))
    (node / "tryboot").write_bytes((1).to_bytes(4, "big"))
    monkeypatch.setenv("KIOSK_FIRMWARE_DT", str(node))
    booted(card, "A")  # the command line says A, the firmware says partition 3 = B
    assert backend("get-current").stdout == "B\n"
    assert tryboot.Backend(card).tryboot()
    tryboot.Backend(card).set_primary("B")
    # on a Pi no request file is left: the firmware's flag does it
    assert tryboot.Backend(card).request_tryboot() == TRYBOOT_REBOOT
    assert not (card / tryboot.TRYBOOT_REQUEST).exists()


def test_autoboot_parser_reads_comments_and_sections():
    text = "# x\n[all]\ntryboot_a_b=1\nboot_partition=2 # A\n\n[tryboot]\nboot_partition = 3\n"
    assert tryboot.parse_autoboot(text) == {"all": 2, "tryboot": 3}
    assert tryboot.firmware_choice("[all]\n", tryboot=True) == 1  # no setting: partition 1


SETTINGS = UpdateConfig(ready_timeout=300, stable_seconds=120, max_restarts=3)


@pytest.mark.parametrize(
    ("app", "elapsed", "action"),
    [
        (AppState(active=False, restarts=0, active_for=0), 10, "wait"),
        (AppState(active=True, restarts=0, active_for=30), 40, "wait"),
        (AppState(active=True, restarts=1, active_for=121), 200, "good"),
        (AppState(active=False, restarts=0, active_for=0), 301, "bad"),
        (AppState(active=True, restarts=4, active_for=5), 60, "bad"),
        (AppState(active=True, restarts=0, active_for=10), 1000, "wait"),  # ready in time
    ],
)
def test_boot_check_verdicts_on_the_trial_boot(card, app, elapsed, action):
    tryboot.Backend(card).set_primary("B")
    booted(card, "B", trial=True)
    assert decide(tryboot.Backend(card), app, elapsed, SETTINGS)[0] == action


def test_boot_check_sees_a_trial_that_fell_back(card):
    tryboot.Backend(card).set_primary("B")
    booted(card, "A")  # B hung or panicked: the firmware cleared its flag and started A
    action, reason = decide(tryboot.Backend(card), AppState(True, 0, 500), 999, SETTINGS)
    assert action == "fell-back" and "slot B" in reason
    booted(card, "B")  # the pending slot booted without the flag: judged as its trial
    assert decide(tryboot.Backend(card), AppState(True, 0, 500), 999, SETTINGS)[0] == "good"
    tryboot.Backend(card).set_primary("A")
    booted(card, "A")
    assert decide(tryboot.Backend(card), AppState(True, 0, 500), 999, SETTINGS)[0] == "none"


class FakeRun:
    """Stands in for rauc (the backend's own calls go through) and systemctl."""

    def __init__(self, card: Path) -> None:
        self.card, self.calls = card, []

    def __call__(self, command):
        self.calls.append(command)
        name = Path(command[0]).name
        if name == "rauc" and "mark-good" in command:
            tryboot.Backend(self.card).set_state(tryboot.Backend(self.card).current(), True)
        if name == "rauc" and "mark-bad" in command:
            tryboot.Backend(self.card).set_state(tryboot.Backend(self.card).current(), False)
        return subprocess.CompletedProcess(command, 0, "", "")


TRYBOOT_REBOOT = ["systemctl", "reboot", "--reboot-argument=0 tryboot"]


def manager(card: Path, tmp_path: Path, run) -> Manager:
    settings = UpdateConfig(state_file=tmp_path / "update.json", ready_timeout=300,
                            stable_seconds=120, max_restarts=3)  # fmt: skip
    return Manager(settings, tryboot.Backend(card), run=run, log=lambda text: None)


def test_switch_then_good(card, tmp_path):
    run = FakeRun(card)
    booted(card, "A")
    tryboot.Backend(card).set_primary("B")
    m = manager(card, tmp_path, run)
    m.record.update(installed={"slot": "B", "version": "1.2.4", "at": "x"})
    assert m.switch() == TRYBOOT_REBOOT
    assert run.calls[-1] == TRYBOOT_REBOOT
    assert (card / tryboot.TRYBOOT_REQUEST).read_text() == "B\n"  # for the qemu harness
    booted(card, "B", trial=True)
    states = iter([AppState(False, 0, 0), AppState(True, 0, 30), AppState(True, 0, 130)])
    assert m.boot_check(probe=lambda: next(states), sleep=lambda s: None) == "good"
    assert firmware(card, tryboot_flag=False) == "B"
    last = json.loads((tmp_path / "update.json").read_text())["last"]
    assert last["result"] == "ok" and last["version"] == "1.2.4"


def test_switch_asks_again_after_the_slow_part_and_stays_when_a_customer_came(card, tmp_path):
    """The quiet moment is checked again once the slots' versions are read (seconds
    through RAUC): a customer who started meanwhile keeps the kiosk, nothing changes."""
    run = FakeRun(card)
    booted(card, "A")
    tryboot.Backend(card).set_primary("B")
    m = manager(card, tmp_path, run)
    said = []
    m.log = said.append
    installed = {"slot": "B", "version": "1.2.4", "at": "x"}
    m.record.update(installed=installed)
    asked = []

    def busy():
        asked.append(len(run.calls))  # after the versions were read through RAUC
        return False, "a customer session is open (scanning)"

    assert m.switch(still_quiet=busy) == []
    assert asked and any(Path(c[0]).name == "rauc" for c in run.calls[: asked[0]])
    assert not any("reboot" in " ".join(c) for c in run.calls)
    assert not (card / tryboot.TRYBOOT_REQUEST).exists()
    assert m.record.read().get("installed") == installed and not m.record.read().get("trial")
    assert said == ["kiosk-update: not switching after all: a customer session is open (scanning)"]
    assert m.switch(still_quiet=lambda: (True, "quiet")) == TRYBOOT_REBOOT  # still pending
    assert (card / tryboot.TRYBOOT_REQUEST).read_text() == "B\n"


def test_switch_then_crashes_roll_back(card, tmp_path):
    run = FakeRun(card)
    booted(card, "A")
    tryboot.Backend(card).set_primary("B")
    m = manager(card, tmp_path, run)
    m.record.update(installed={"slot": "B", "version": "1.2.5", "at": "x"})
    m.switch()
    booted(card, "B", trial=True)
    assert m.boot_check(probe=lambda: AppState(True, 4, 3), sleep=lambda s: None) == "bad"
    assert run.calls[-1] == ["systemctl", "reboot"]  # a normal reboot: the firmware starts A
    assert firmware(card, tryboot_flag=False) == "A"
    assert tryboot.Backend(card).get_state("B") == "bad"
    last = json.loads((tmp_path / "update.json").read_text())["last"]
    assert last["result"] == "rolled_back" and "restarted 4 times" in last["reason"]
    # the old version's own boot check then has nothing to do
    booted(card, "A")
    assert m.boot_check(probe=lambda: AppState(True, 0, 500), sleep=lambda s: None) == "none"


def test_trial_that_never_came_up_is_reported_by_the_old_version(card, tmp_path):
    run = FakeRun(card)
    booted(card, "A")
    tryboot.Backend(card).set_primary("B")
    m = manager(card, tmp_path, run)
    m.record.update(installed={"slot": "B", "version": "1.2.6", "at": "x"})
    m.switch()
    before = len(run.calls)
    booted(card, "A")  # B never reached user space: power cycle, firmware starts A
    assert m.boot_check(probe=lambda: AppState(True, 0, 500), sleep=lambda s: None) == "fell-back"
    assert tryboot.Backend(card).state().pending is None
    assert tryboot.Backend(card).get_state("B") == "bad"
    last = json.loads((tmp_path / "update.json").read_text())["last"]
    assert last["result"] == "rolled_back" and last["version"] == "1.2.6"
    assert not any("reboot" in " ".join(c) for c in run.calls[before:])


def test_rollback_refuses_a_bad_other_slot(card, tmp_path):
    booted(card, "A")
    tryboot.Backend(card).set_state("B", False)
    with pytest.raises(UpdateError, match="marked bad"):
        manager(card, tmp_path, FakeRun(card)).rollback()
    with pytest.raises(UpdateError, match="nothing installed"):
        manager(card, tmp_path, FakeRun(card)).switch()


# ---------------------------------------------------------------- real RAUC


@pytest.fixture
def rauc_service(tmp_path, card):
    """rauc's service on a private system bus, slots as files, our backend; yields a
    function that (re)starts it as booted from a slot."""
    for tool, package in (("rauc", "rauc"), ("dbus-daemon", "dbus-daemon"),
                          ("mksquashfs", "squashfs-tools")):  # fmt: skip
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install {package}")
    work = tmp_path / "rauc"
    work.mkdir()
    key, cert = bundle.make_dev_key(work / "keys")
    for slot in ("a", "b"):
        (work / f"root-{slot}.img").write_bytes(b"\0" * 2 * 1024 * 1024)
        (work / f"boot-{slot}.vfat").write_bytes(b"\0" * 16 * 1024 * 1024)
    slot_boot = work / "slot-boot"
    slot_boot.mkdir()
    (slot_boot / "cmdline.txt").write_text("console=serial0,115200 root=LABEL=rootfs ro\n")
    boot_image = layout.fat_image(work / "boot.vfat", slot_boot, "KIOSKSLOT", 16)
    handler = work / "post-install"
    handler.write_text(
        f"#!/bin/sh\nexport PYTHONPATH={REPO}\n"
        f"exec {sys.executable} -m kiosk.update.layout post-install\n"
    )
    handler.chmod(0o755)
    script = work / "backend"
    script.write_text(
        "#!/bin/sh\n"
        f"export KIOSK_BOOTSEL={card} KIOSK_FIRMWARE_DT={tmp_path / 'no-firmware-node'}\n"
        f"export KIOSK_CMDLINE={card.parent / 'cmdline'} PYTHONPATH={REPO}\n"
        f'exec {sys.executable} -m kiosk.update.tryboot "$@"\n'
    )
    script.chmod(0o755)
    conf = work / "system.conf"
    # Only this test allows plain bundles: verity ones need the kernel's device mapper,
    # which this machine (a container) does not give; the image allows verity only.
    conf.write_text(
        f"[system]\ncompatible={bundle.COMPATIBLE}\nbootloader=custom\n"
        f"data-directory={work / 'data'}\nbundle-formats=plain verity\n\n"
        f"[keyring]\npath={cert}\n\n[handlers]\nbootloader-custom-backend={script}\n"
        f"post-install={handler}\n\n"
        f"[slot.rootfs.0]\ndevice={work / 'root-a.img'}\ntype=raw\nbootname=A\n\n"
        f"[slot.boot.0]\ndevice={work / 'boot-a.vfat'}\ntype=vfat\nparent=rootfs.0\n\n"
        f"[slot.rootfs.1]\ndevice={work / 'root-b.img'}\ntype=raw\nbootname=B\n\n"
        f"[slot.boot.1]\ndevice={work / 'boot-b.vfat'}\ntype=vfat\nparent=rootfs.1\n"
    )
    (work / "data").mkdir()
    socket_path = work / "bus.sock"
    (work / "bus.conf").write_text(
        '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n'
        ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
        f"<busconfig><type>system</type><listen>unix:path={socket_path}</listen>"
        "<auth>EXTERNAL</auth><policy context='default'><allow user='*'/><allow own='*'/>"
        "<allow send_destination='*'/><allow receive_sender='*'/></policy></busconfig>\n"
    )
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={socket_path}"}
    processes = []
    bus = subprocess.Popen(["dbus-daemon", f"--config-file={work / 'bus.conf'}", "--nofork",
                            "--nopidfile"], stderr=subprocess.DEVNULL)  # fmt: skip
    processes.append(bus)
    wait_until(socket_path.exists, timeout=30, what="the private D-Bus")
    service = {}

    def start(slot: str, trial: bool = False) -> None:
        if service.get("process"):
            service["process"].send_signal(signal.SIGTERM)
            service["process"].wait(timeout=30)
        booted(card, slot, trial)
        service["process"] = subprocess.Popen(
            ["rauc", f"--conf={conf}", "service", f"--override-boot-slot={slot}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(service["process"])

        def answers() -> bool:
            return subprocess.run(["rauc", "status"], env=env, capture_output=True,
                                  timeout=30).returncode == 0  # fmt: skip

        wait_until(answers, timeout=60, what="rauc's service")

    def plain_bundle(version: str) -> Path:
        content = work / f"content-{version}"
        content.mkdir()
        (content / "rootfs.ext4").write_bytes(version.encode() * 100_000)
        shutil.copy(boot_image, content / "boot.vfat")
        images = {"rootfs": "rootfs.ext4", "boot": "boot.vfat"}
        manifest = bundle.manifest_text(version, "", images)
        (content / "manifest.raucm").write_text(manifest.replace("format=verity", "format=plain"))
        out = work / f"kiosk-{version}.raucb"
        subprocess.run(["rauc", "bundle", f"--cert={cert}", f"--key={key}", str(content),
                        str(out)], check=True, capture_output=True, timeout=120)  # fmt: skip
        return out

    start.env, start.work, start.plain_bundle = env, work, plain_bundle
    yield start
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def test_real_rauc_installs_into_the_other_slot_and_marks_through_our_backend(
    rauc_service, card, tmp_path, monkeypatch
):
    for key, value in rauc_service.env.items():
        monkeypatch.setenv(key, value)
    rauc_service("A")
    run_calls = []

    def run(command):
        run_calls.append(command)
        if command[0] == "systemctl":
            return subprocess.CompletedProcess(command, 0, "", "")
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    m = manager(card, tmp_path, run)
    status = m.status()
    assert (status["booted"], status["committed"], status["pending"]) == ("A", "A", None)
    image = rauc_service.plain_bundle("1.2.4")
    m.rauc("install", str(image))
    written = (rauc_service.work / "root-b.img").read_bytes()
    assert written.startswith(b"1.2.4" * 1000)
    # RAUC ran our post-install handler: slot B's boot partition boots slot B's root
    line = layout.read_fat_file(str(rauc_service.work / "boot-b.vfat"), "cmdline.txt")
    assert "root=PARTUUID=6b696f73-06" in line and "rauc.slot=B" in line
    assert (rauc_service.work / "boot-a.vfat").read_bytes()[:512] == b"\0" * 512  # untouched
    assert tryboot.Backend(card).state().pending == "B"
    status = m.status()
    assert status["other_version"] == "1.2.4" and status["pending"] == "B"
    m.switch()
    assert run_calls[-1] == TRYBOOT_REBOOT
    assert firmware(card, tryboot_flag=True) == "B" and firmware(card, False) == "A"
    # the trial boot of B: RAUC's mark-good goes through our backend and commits B
    rauc_service("B", trial=True)
    assert m.boot_check(probe=lambda: AppState(True, 0, 500), sleep=lambda s: None) == "good"
    assert firmware(card, tryboot_flag=False) == "B"
    assert m.status()["booted_version"] == "1.2.4"
    slots = json.loads((tmp_path / "update.json").read_text())["slots"]
    assert slots["booted"] == "B" and slots["versions"]["B"] == "1.2.4"
    # a technician's rollback: A is tried once, through RAUC's mark-active
    m.rollback()
    assert tryboot.Backend(card).state().pending == "A" and firmware(card, True) == "A"
    # A's trial boot keeps crashing: RAUC's mark-bad through our backend, back to B
    rauc_service("A", trial=True)
    assert m.boot_check(probe=lambda: AppState(True, 9, 1), sleep=lambda s: None) == "bad"
    assert run_calls[-1] == ["systemctl", "reboot"]
    assert (
        tryboot.Backend(card).state().pending is None
        and tryboot.Backend(card).get_state("A") == "bad"
    )
    assert firmware(card, tryboot_flag=False) == "B"


def test_status_fields_report_slots_and_a_rolled_back_update(tmp_path):
    """What the kiosk's status says about updates, bounded by the contract's parser."""
    from kiosk.mqtt import topics  # noqa: PLC0415
    from kiosk.update.manager import Record, status_fields  # noqa: PLC0415

    path = tmp_path / "update.json"
    assert status_fields(path) == {}  # no record: a machine without A/B slots
    Record(path).update(
        last={"version": "1.2.5", "result": "rolled_back", "reason": "x" * 500,
              "at": "2026-11-24T03:00:00Z"},
        slots={"booted": "A", "versions": {"A": "1.2.4", "B": "1.2.5"}},
    )  # fmt: skip
    fields = status_fields(path)
    assert fields["slot"] == "A" and fields["other"] == "1.2.5"
    assert fields["result"] == "rolled_back" and fields["version"] == "1.2.5"
    extras = topics.status_extras("1.2.4", True, fields)
    assert len(extras["update"]["reason"]) == 200
    status = topics.kiosk_status("till-01", True, 0, "ok", 1) | extras
    parsed = topics.parse_status_extras(topics.encode(status))
    assert parsed["update"] == extras["update"]
    for bad in ({"result": "exploded"}, {"slot": "A" * 9}, {"reason": "a\nb"}, {"x": "1"}, []):
        status["update"] = bad
        assert "update" not in topics.parse_status_extras(topics.encode(status))


def test_the_diagnostics_screen_shows_both_slots(tmp_path):
    from kiosk import __version__  # noqa: PLC0415
    from kiosk.app import Hardware  # noqa: PLC0415
    from kiosk.config import parse  # noqa: PLC0415
    from kiosk.drivers.base import MemoryDrawer, MemoryPrinter  # noqa: PLC0415
    from kiosk.update.manager import Record  # noqa: PLC0415

    record = tmp_path / "update.json"
    config = parse(f'[update]\nstate_file = "{record}"\n')
    hardware = Hardware(config, MemoryPrinter(), MemoryDrawer(), demo=False)
    assert hardware.facts()[-1] == f"software: {__version__}"  # no A/B record
    Record(record).update(
        slots={"booted": "B", "versions": {"A": "1.3.0", "B": __version__}},
        last={"version": "1.3.0", "result": "rolled_back", "reason": "crashed 4 times"},
    )
    line = hardware.facts()[-1]
    assert line == (f"software: {__version__}  slot B, other slot 1.3.0  "
                    "update to 1.3.0 rolled back")  # fmt: skip
    record.write_text("{not json")
    assert hardware.facts()[-1] == f"software: {__version__}"  # damaged: the version alone


def test_a_refused_reboot_is_said_not_swallowed(card, tmp_path):
    """Seen in the qemu A/B test: the switch's reboot did nothing and nothing said why."""
    booted(card, "A")
    tryboot.Backend(card).set_primary("B")

    def run(command):
        if command[0] == "systemctl":
            return subprocess.CompletedProcess(command, 1, "", "Operation inhibited\n")
        return subprocess.CompletedProcess(command, 0, "", "")

    with pytest.raises(UpdateError, match="reboot into slot B was refused: Operation inhibited"):
        manager(card, tmp_path, run).switch()
