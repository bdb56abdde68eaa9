#!/usr/bin/env python3
"""The qemu boot test's stand-in for the Pi firmware on an A/B card (kiosk/update/layout.py).

qemu's `virt` machine has no Raspberry Pi firmware: this reads the card the way the
firmware does and prints what qemu needs to start the chosen slot.

    abboot.py choose CARD WORK   -> shell assignments SLOT= PART= TRIAL= KERNEL= INITRD= APPEND=

It reads autoboot.txt on partition 1; the one-shot tryboot flag is `tryboot.req` beside it
(kiosk.update.tryboot leaves it where there is no firmware node, before it reboots), which
this consumes (deletes) as the firmware clears its flag; the chosen boot partition's
config.txt names the kernel and initramfs (raspi-firmware writes `kernel=` and
`initramfs ... followkernel`), its cmdline.txt the kernel command line. A trial boot gets
`kiosk.tryboot=1` appended: the backend's stand-in for /proc/device-tree/chosen/bootloader.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kiosk.provision.card import partitions  # noqa: E402
from kiosk.update import tryboot  # noqa: E402
from kiosk.update.layout import read_fat_file  # noqa: E402

QEMU_CONSOLE = "console=ttyAMA0"


def mtools(args: list[str], image: Path, offset: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    return subprocess.run([args[0], "-i", f"{image}@@{offset}", *args[1:]], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip


def partition_start(image: Path, number: int) -> int:
    """Byte offset of partition `number` (1-4 from the MBR, 5+ logical via sfdisk)."""
    for part in partitions(image):
        if part.number == number:
            return part.start
    out = subprocess.run(["sfdisk", "--dump", str(image)], capture_output=True, text=True,
                         check=True, timeout=60).stdout  # fmt: skip
    for line in out.splitlines():
        match = re.match(rf"\S*?{number}\s*:\s*start=\s*(\d+)", line)
        if match:
            return int(match.group(1)) * 512
    raise SystemExit(f"abboot: {image} has no partition {number}")


def boot_files(config: str, listing: list[str]) -> tuple[str, str]:
    """The kernel and initramfs config.txt names (else the newest vmlinuz*/initrd.img*)."""
    kernel = re.search(r"^\s*kernel\s*=\s*(\S+)", config, re.M)
    initrd = re.search(r"^\s*initramfs\s+(\S+)", config, re.M)
    kernels = sorted(n for n in listing if n.startswith("vmlinuz"))
    initrds = sorted(n for n in listing if n.startswith("initrd.img"))
    if not (kernel or kernels) or not (initrd or initrds):
        raise SystemExit("abboot: no kernel or initramfs on the chosen boot partition")
    return (kernel.group(1) if kernel else kernels[-1], initrd.group(1) if initrd else initrds[-1])


def qemu_append(cmdline: str, trial: bool) -> str:
    """The slot's command line for qemu: its root= and rauc.slot= kept, the Pi's serial
    consoles replaced by qemu's."""
    words = [w for w in cmdline.split() if not w.startswith("console=")]
    return " ".join([QEMU_CONSOLE, *words, *(["kiosk.tryboot=1"] if trial else [])])


def choose(image: Path, work: Path) -> dict[str, str]:
    select = partition_start(image, 1)
    autoboot = read_fat_file(str(image), tryboot.AUTOBOOT, select)
    listing = mtools(["mdir", "-b", "::/"], image, select).stdout.split()
    trial = any(name.rstrip("/").endswith(tryboot.TRYBOOT_REQUEST) for name in listing)
    if trial:  # the firmware clears its one-shot flag before it starts the kernel
        mtools(["mdel", f"::/{tryboot.TRYBOOT_REQUEST}"], image, select)
    number = tryboot.firmware_choice(autoboot, trial)
    start = partition_start(image, number)
    config = read_fat_file(str(image), "config.txt", start)
    names = [Path(n).name for n in mtools(["mdir", "-b", "::/"], image, start).stdout.split()]
    kernel, initrd = boot_files(config, names)
    work.mkdir(parents=True, exist_ok=True)
    for name in (kernel, initrd):
        copied = mtools(["mcopy", "-o", f"::/{name}", str(work / name)], image, start)
        if copied.returncode != 0:
            raise SystemExit(f"abboot: cannot copy {name}: {copied.stderr.strip()}")
    cmdline = read_fat_file(str(image), "cmdline.txt", start)
    return {
        "SLOT": tryboot.slot_of_partition(number),
        "PART": str(number),
        "TRIAL": "1" if trial else "0",
        "KERNEL": str(work / kernel),
        "INITRD": str(work / initrd),
        "APPEND": qemu_append(cmdline, trial),
    }


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "choose":
        for key, value in choose(Path(argv[1]), Path(argv[2])).items():
            print(f"{key}={shlex.quote(value)}")
        return 0
    print("usage: abboot.py choose CARD WORK", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
