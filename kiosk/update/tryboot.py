"""RAUC's custom bootloader backend for the Raspberry Pi firmware's A/B boot.

The card: partition 1 is a small FAT file system with `autoboot.txt` (and the
provisioning bundle; mounted at /boot/firmware), partitions 2 and 3 are the boot
partitions of slots A and B (firmware, kernel, initrd, cmdline.txt), 5 and 6 (logical)
their root file systems, 7 the data partition. The firmware reads autoboot.txt:

    [all]
    tryboot_a_b=1
    boot_partition=2      <- the committed slot, booted normally
    [tryboot]
    boot_partition=3      <- booted once after `reboot '0 tryboot'`

The tryboot flag is one-shot and cleared by the firmware before it starts the kernel,
so a new version that hangs, panics or is rebooted without being committed comes back
up on the committed slot. Committing = rewriting [all] (on mark-good).

RAUC calls this with (docs/integration.rst, "Custom bootloader backend interface"):
  get-primary            print the bootname booted next (a pending trial, else the
                         committed slot)
  set-primary NAME       NAME is tried once on the next tryboot reboot (NAME = the
                         committed slot cancels a pending trial)
  get-state NAME         print good or bad
  set-state NAME good|bad  good on the slot on trial commits it; bad on a pending slot
                         cancels it, bad on the committed slot commits the other slot
                         if it is good
  get-current            print the booted slot's bootname (RAUC >= 1.10; older ones
                         read rauc.slot= from the kernel command line)

State beside autoboot.txt, in `kiosk-slots.txt` (KEY=value lines): each slot's state and
the pending trial. Every file is written to a temporary name, synced and renamed (one
directory entry on FAT), so a power cut leaves the old file or the new one.

Paths for tests and the qemu boot test: KIOSK_BOOTSEL (default /boot/firmware),
KIOSK_FIRMWARE_DT (default /proc/device-tree/chosen/bootloader), KIOSK_CMDLINE
(default /proc/cmdline). Without the Pi firmware's device tree node (qemu), the booted
slot and the tryboot flag come from the kernel command line (rauc.slot=, kiosk.tryboot=1)
and a tryboot reboot leaves `tryboot.req` beside autoboot.txt for the test harness.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

SLOTS = {"A": 2, "B": 3}  # bootname -> boot partition number
AUTOBOOT = "autoboot.txt"
STATE = "kiosk-slots.txt"
TRYBOOT_REQUEST = "tryboot.req"  # qemu only: the harness plays the firmware's flag


class BackendError(Exception):
    pass


def bootsel() -> Path:
    return Path(os.environ.get("KIOSK_BOOTSEL", "/boot/firmware"))


def firmware_dt() -> Path:
    return Path(os.environ.get("KIOSK_FIRMWARE_DT", "/proc/device-tree/chosen/bootloader"))


def cmdline() -> str:
    try:
        return Path(os.environ.get("KIOSK_CMDLINE", "/proc/cmdline")).read_text()
    except OSError:
        return ""


def other(name: str) -> str:
    check_name(name)
    return "B" if name == "A" else "A"


def check_name(name: str) -> str:
    if name not in SLOTS:
        raise BackendError(f"unknown slot {name!r} (A or B)")
    return name


def slot_of_partition(number: int) -> str:
    for name, partition in SLOTS.items():
        if partition == number:
            return name
    raise BackendError(f"boot partition {number} is no slot's")


def autoboot_text(committed: str, trial: str | None = None) -> str:
    return (
        "# Written by kiosk.update.tryboot (RAUC's bootloader backend): the committed\n"
        "# slot boots normally, [tryboot] once after reboot '0 tryboot'.\n"
        "[all]\ntryboot_a_b=1\n"
        f"boot_partition={SLOTS[committed]}\n"
        f"[tryboot]\nboot_partition={SLOTS[trial or other(committed)]}\n"
    )


def parse_autoboot(text: str) -> dict[str, int]:
    """{section: boot_partition} of an autoboot.txt (sections 'all' and 'tryboot')."""
    section, found = "all", {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            section = header.group(1).lower()
            continue
        key, _, value = line.partition("=")
        if key.strip() == "boot_partition" and value.strip().isdigit():
            found[section] = int(value.strip())
    return found


def firmware_choice(autoboot: str, tryboot: bool) -> int:
    """The boot partition the Pi firmware starts, given autoboot.txt and the one-shot
    tryboot flag (what the qemu boot test plays)."""
    found = parse_autoboot(autoboot)
    if tryboot and "tryboot" in found:
        return found["tryboot"]
    return found.get("all", 1)


@dataclass
class State:
    states: dict[str, str] = field(default_factory=lambda: {"A": "good", "B": "good"})
    pending: str | None = None  # the slot to try on the next tryboot reboot

    @classmethod
    def read(cls, folder: Path) -> State:
        state = cls()
        try:
            text = (folder / STATE).read_text()
        except FileNotFoundError:
            return state
        for line in text.splitlines():
            key, _, value = line.strip().partition("=")
            if key in SLOTS and value in ("good", "bad"):
                state.states[key] = value
            elif key == "pending" and value in SLOTS:
                state.pending = value
        return state

    def text(self) -> str:
        lines = [f"{name}={self.states[name]}" for name in SLOTS]
        if self.pending:
            lines.append(f"pending={self.pending}")
        return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".new")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Backend:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or bootsel()

    # what is on the boot selection partition
    def committed(self) -> str:
        try:
            text = (self.folder / AUTOBOOT).read_text()
        except FileNotFoundError:
            raise BackendError(f"{self.folder / AUTOBOOT}: missing (not an A/B card)") from None
        return slot_of_partition(parse_autoboot(text).get("all", 0))

    def state(self) -> State:
        return State.read(self.folder)

    def _write(self, committed: str, state: State) -> None:
        write_atomically(self.folder / STATE, state.text())
        write_atomically(self.folder / AUTOBOOT, autoboot_text(committed, state.pending))

    # what the firmware says about this boot
    def current(self) -> str:
        node = firmware_dt() / "partition"
        if node.exists():
            return slot_of_partition(int.from_bytes(node.read_bytes()[:4], "big"))
        match = re.search(r"(?:^|\s)rauc\.slot=(\S+)", cmdline())
        if match:
            return check_name(match.group(1))
        raise BackendError("cannot tell the booted slot (no firmware node, no rauc.slot=)")

    def tryboot(self) -> bool:
        """Whether this boot is the one-shot trial."""
        node = firmware_dt() / "tryboot"
        if node.exists():
            return int.from_bytes(node.read_bytes()[:4] or b"\0", "big") == 1
        return re.search(r"(?:^|\s)kiosk\.tryboot=1(?:\s|$)", cmdline()) is not None

    # RAUC's interface
    def get_primary(self) -> str:
        return self.state().pending or self.committed()

    def set_primary(self, name: str) -> None:
        check_name(name)
        committed, state = self.committed(), self.state()
        state.pending = None if name == committed else name
        if state.pending:
            state.states[name] = "good"  # RAUC marks a freshly written slot primary
        self._write(committed, state)

    def get_state(self, name: str) -> str:
        return self.state().states[check_name(name)]

    def set_state(self, name: str, good: bool) -> None:
        check_name(name)
        committed, state = self.committed(), self.state()
        state.states[name] = "good" if good else "bad"
        if good and state.pending == name:
            # mark-good of the slot on trial: it is the committed slot from now on
            state.pending = None
            committed = name
        elif not good and state.pending == name:
            state.pending = None
        elif not good and name == committed and state.states[other(name)] == "good":
            committed = other(name)
            state.pending = None
        self._write(committed, state)

    def request_tryboot(self) -> list[str]:
        """The reboot command that starts the pending slot once; in qemu a request file
        for the harness too."""
        if not self.state().pending:
            raise BackendError("no slot is waiting for a trial boot")
        if not firmware_dt().exists():
            write_atomically(self.folder / TRYBOOT_REQUEST, self.get_primary() + "\n")
        # systemd 253 and later refuse the old positional form (`systemctl reboot "0
        # tryboot"`, removed in systemd#25507): the qemu A/B test's switch never rebooted.
        return ["systemctl", "reboot", "--reboot-argument=0 tryboot"]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    backend = Backend()
    try:
        match args:
            case ["get-primary"]:
                print(backend.get_primary())
            case ["set-primary", name]:
                backend.set_primary(name)
            case ["get-state", name]:
                print(backend.get_state(name))
            case ["set-state", name, ("good" | "bad") as value]:
                backend.set_state(name, value == "good")
            case ["get-current"]:
                print(backend.current())
            case _:
                print(
                    "usage: get-primary | set-primary A|B | get-state A|B | "
                    "set-state A|B good|bad | get-current",
                    file=sys.stderr,
                )
                return 2
    except (BackendError, OSError, ValueError) as exc:
        print(f"kiosk-rauc-backend: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
