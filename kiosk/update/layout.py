"""The A/B card: partitions, the slot images an update bundle carries, the kernel
command line of each slot, and RAUC's post-install handler.

    p1  FAT  64 MiB   BOOT     autoboot.txt (kiosk.update.tryboot), the provisioning
                               bundle (/kiosk, kiosk.provision.card writes it to the
                               first FAT partition); mounted at /boot/firmware
    p2  FAT  256 MiB  BOOT_A   slot A: firmware, kernel, initrd, config.txt, cmdline.txt
    p3  FAT  256 MiB  BOOT_B   slot B
    p4  extended
    p5  ext4 2 GiB    rootfs   slot A's root (read-only)
    p6  ext4 2 GiB    rootfs   slot B's root
    p7  ext4 512 MiB  kioskdata the ledger, the broker's queue, RAUC's slot status,
                               update.json: never written by an update

The boot partitions are primary (the firmware's boot_partition= and the Pi 4/5
bootloader read them like any MBR primary); roots and data are logical partitions.
Both slots get the same images from a bundle; what differs is the kernel command line
(root=PARTUUID=<disk id>-05 or -06, rauc.slot=A or B), which the post-install handler
writes into the freshly written boot slot (mtools, no mount).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from kiosk.provision.card import SECTOR, CardError, _copy_sparse, _tool
from kiosk.update import UpdateError, identity, tryboot

DISK_ID = "6b696f73"  # the MBR disk id kiosk cards carry ("kios")
ROOTS = {"A": 5, "B": 6}  # bootname -> root partition number
DATA = 7
MIB = 1024 * 1024


def cmdline(slot: str, base: str) -> str:
    """The slot's kernel command line: `base` (the image's cmdline.txt) with its root=
    replaced by the slot's own partition and rauc.slot= added."""
    words = [w for w in base.split() if not w.startswith(("root=", "rauc.slot="))]
    root = f"root=PARTUUID={DISK_ID}-{ROOTS[tryboot.check_name(slot)]:02d}"
    return " ".join([*words[:1], root, *words[1:], f"rauc.slot={slot}"]).strip() + "\n"


def _mtools_env() -> dict[str, str]:
    return {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


def read_fat_file(image: str, name: str, offset: int = 0) -> str:
    result = subprocess.run(
        [_tool("mtype", "mtools"), "-i", f"{image}@@{offset}", f"::/{name}"],
        capture_output=True, text=True, env=_mtools_env(), timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        raise CardError(f"{image}: no {name}: {result.stderr.strip()}")
    return result.stdout


def write_fat_file(image: str, name: str, text: str, offset: int = 0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / name
        source.write_text(text)
        result = subprocess.run(
            [_tool("mcopy", "mtools"), "-o", "-i", f"{image}@@{offset}", str(source), "::/"],
            capture_output=True, text=True, env=_mtools_env(), timeout=60,
        )  # fmt: skip
    if result.returncode != 0:
        raise CardError(f"{image}: cannot write {name}: {result.stderr.strip()}")


def set_slot_cmdline(boot_device: str, slot: str, offset: int = 0) -> str:
    """Rewrite cmdline.txt on a slot's boot file system (device or image file)."""
    text = cmdline(slot, read_fat_file(boot_device, "cmdline.txt", offset))
    write_fat_file(boot_device, "cmdline.txt", text, offset)
    return text


def post_install(environ: dict[str, str] | None = None) -> list[str]:
    """RAUC's post-install handler: each root slot written gets the device's identity
    from the running root (kiosk.update.identity: config, passwords, hostname, ...), each
    boot slot written its slot's command line. RAUC names the slots it wrote in
    RAUC_TARGET_SLOTS and describes slot N in RAUC_SLOT_CLASS_N, RAUC_SLOT_DEVICE_N and
    RAUC_SLOT_PARENT_N."""
    env = os.environ if environ is None else environ
    bootnames = {"rootfs.0": "A", "rootfs.1": "B"}
    done = []
    for index in env.get("RAUC_TARGET_SLOTS", "").split():
        if env.get(f"RAUC_SLOT_CLASS_{index}") == "rootfs":
            device = env[f"RAUC_SLOT_DEVICE_{index}"]
            if env.get(f"RAUC_SLOT_TYPE_{index}") != "ext4":  # a raw test slot: no files
                print(f"kiosk post-install: {device}: not an ext4 root, no identity carried")
                continue
            carried = identity.carry_to_device(device)
            print(f"kiosk post-install: {device}: the device's identity carried over "
                  f"({len(carried)} paths)")  # fmt: skip
            continue
        if env.get(f"RAUC_SLOT_CLASS_{index}") != "boot":
            continue
        slot = bootnames.get(env.get(f"RAUC_SLOT_PARENT_{index}", ""))
        if slot is None:
            raise CardError(f"boot slot {index} has no known parent")
        set_slot_cmdline(env[f"RAUC_SLOT_DEVICE_{index}"], slot)
        done.append(slot)
    return done


def fat_bits(mib: int) -> int:
    """FAT32 needs 65525 clusters: smaller partitions (the boot selection) are FAT16."""
    return 32 if mib >= 256 else 16


def fat_image(path: Path, folder: Path, label: str, mib: int) -> Path:
    """A FAT32 file system image with `folder`'s files (a slot's boot partition)."""
    path.unlink(missing_ok=True)
    subprocess.run([_tool("mkfs.vfat", "dosfstools"), "-F", str(fat_bits(mib)), "-n", label,
                    "-i", DISK_ID, "-C", str(path), str(mib * 1024)], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    entries = [str(p) for p in sorted(folder.iterdir())]
    if entries:
        subprocess.run([_tool("mcopy", "mtools"), "-s", "-i", str(path), *entries, "::/"],
                       check=True, capture_output=True, env=_mtools_env(), timeout=600)  # fmt: skip
    return path


def ext4_image(path: Path, folder: Path | None, label: str, mib: int) -> Path:
    path.unlink(missing_ok=True)
    args = [_tool("mkfs.ext4", "e2fsprogs"), "-q", "-F", "-L", label, "-E", "root_owner=0:0"]
    if folder is not None:
        args += ["-d", str(folder)]
    env = {**os.environ}
    if os.environ.get("SOURCE_DATE_EPOCH"):
        env["E2FSPROGS_FAKE_TIME"] = os.environ["SOURCE_DATE_EPOCH"]
    result = subprocess.run([*args, str(path), f"{mib}M"], capture_output=True, text=True,
                            env=env, timeout=1200)  # fmt: skip
    if result.returncode != 0:
        raise CardError(f"mkfs.ext4 {label}: {result.stderr.strip()}")
    return path


def assemble_ab(
    out: Path, bootsel_dir: Path, boot_image: Path, root_image: Path, data_dir: Path | None,
    bootsel_mib: int = 64, boot_mib: int = 256, root_mib: int = 2048, data_mib: int = 512,
) -> list[tuple[int, int, int]]:  # fmt: skip
    """The A/B card image: both slots from the same boot and root images (slot A
    committed), the boot selection partition from `bootsel_dir` plus autoboot.txt, data
    from `data_dir`. Returns (number, start, size) in bytes per partition."""
    sfdisk = _tool("sfdisk", "fdisk")
    for image, mib in ((boot_image, boot_mib), (root_image, root_mib)):
        if image.stat().st_size > mib * MIB:
            raise CardError(f"{image}: larger than its {mib} MiB partition")
    start = 2048  # sectors: 1 MiB aligned
    sizes = {1: bootsel_mib, 2: boot_mib, 3: boot_mib, 5: root_mib, 6: root_mib, 7: data_mib}
    script = f"label: dos\nlabel-id: 0x{DISK_ID}\n"
    layout = {}
    for number in (1, 2, 3):
        sectors = sizes[number] * MIB // SECTOR
        kind = "c" if fat_bits(sizes[number]) == 32 else "e"  # FAT32 or FAT16, LBA
        flag = ", bootable" if number == 1 else ""
        script += f"start={start}, size={sectors}, type={kind}{flag}\n"
        layout[number] = (start, sectors)
        start += sectors
    extended_start = start
    logical = sum(sizes[n] * MIB // SECTOR + 2048 for n in (5, 6, 7))
    script += f"start={extended_start}, size={logical}, type=5\n"
    for number in (5, 6, 7):
        start += 2048  # room for the logical partition's own table (EBR), 1 MiB aligned
        sectors = sizes[number] * MIB // SECTOR
        script += f"start={start}, size={sectors}, type=83\n"
        layout[number] = (start, sectors)
        start += sectors
    with open(out, "wb") as handle:
        handle.truncate((start + 2048) * SECTOR)
    result = subprocess.run([sfdisk, "--no-reread", "--no-tell-kernel", str(out)], input=script,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    if result.returncode != 0:
        raise CardError(f"sfdisk: {result.stderr.strip()}")
    with tempfile.TemporaryDirectory() as tmp:
        select = Path(tmp) / "bootsel"
        shutil.copytree(bootsel_dir, select)
        (select / tryboot.AUTOBOOT).write_text(tryboot.autoboot_text("A"))
        pieces = {1: fat_image(Path(tmp) / "bootsel.vfat", select, "BOOT", bootsel_mib)}
        pieces[2] = pieces[3] = boot_image
        pieces[5] = pieces[6] = root_image
        pieces[DATA] = ext4_image(Path(tmp) / "data.ext4", data_dir, "kioskdata", data_mib)
        with open(out, "r+b") as image:
            for number, piece in pieces.items():
                _copy_sparse(piece, image, layout[number][0] * SECTOR)
    for slot, number in (("A", 2), ("B", 3)):
        set_slot_cmdline(str(out), slot, layout[number][0] * SECTOR)
    return [(n, s * SECTOR, c * SECTOR) for n, (s, c) in sorted(layout.items())]


def main(argv: list[str] | None = None) -> int:
    """`python -m kiosk.update.layout post-install` is RAUC's post-install handler."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["post-install"]:
        try:
            for slot in post_install():
                print(f"kiosk post-install: slot {slot}'s cmdline.txt written")
        except (CardError, UpdateError, KeyError, OSError, subprocess.SubprocessError) as exc:
            print(f"kiosk post-install: {exc}", file=sys.stderr)
            return 1
        return 0
    print("usage: python -m kiosk.update.layout post-install", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
