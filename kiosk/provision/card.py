"""SD cards and image files without root mounts: the MBR read in Python, the FAT boot
partition reached with mtools at its byte offset, ext4 file systems built from a
folder with `mkfs.ext4 -d`, partition tables written by sfdisk into a plain file."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512
FAT_TYPES = {0x0B, 0x0C, 0x0E, 0x06}
BUNDLE_DIR = "kiosk"  # where a device's bundle sits on the boot partition


class CardError(Exception):
    """A card or image that cannot be read or written; the message says why."""


@dataclass(frozen=True)
class Partition:
    number: int
    type: int
    start: int  # bytes
    size: int  # bytes

    @property
    def is_fat(self) -> bool:
        return self.type in FAT_TYPES


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise CardError(f"{name} not found: apt-get install {package}")
    return path


def partitions(target: Path) -> list[Partition]:
    try:
        with open(target, "rb") as handle:
            mbr = handle.read(SECTOR)
    except PermissionError:
        raise CardError(f"{target}: permission denied (add yourself to the 'disk' group)") from None
    except OSError as exc:
        raise CardError(f"{target}: cannot read: {exc}") from None
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        raise CardError(f"{target}: no MBR partition table (is this a flashed kiosk card?)")
    found = []
    for index in range(4):
        entry = mbr[446 + 16 * index : 446 + 16 * (index + 1)]
        kind = entry[4]
        start, count = struct.unpack("<II", entry[8:16])
        if kind and count:
            found.append(Partition(index + 1, kind, start * SECTOR, count * SECTOR))
    return found


def boot_partition(target: Path) -> Partition:
    for partition in partitions(target):
        if partition.is_fat:
            return partition
    raise CardError(f"{target}: no FAT boot partition")


def _mtools(args: list[str], target: Path, offset: int, check: bool = True) -> str:
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    tool = _tool(args[0], "mtools")
    result = subprocess.run(
        [tool, "-i", f"{target}@@{offset}", *args[1:]],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise CardError(f"{args[0]} on {target}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout if result.returncode == 0 else ""


def write_bundle(bundle: Path, target: Path) -> None:
    """Copy a device bundle (kiosk.toml, mqtt.pass, firstboot.toml, and broker/ on the
    broker's host) to /kiosk on the card's boot partition, replacing any earlier one."""
    boot = boot_partition(target)
    _mtools(["mdeltree", f"::/{BUNDLE_DIR}"], target, boot.start, check=False)
    _mtools(["mmd", f"::/{BUNDLE_DIR}"], target, boot.start)
    entries = [str(entry) for entry in sorted(bundle.iterdir())]
    _mtools(["mcopy", "-s", "-o", *entries, f"::/{BUNDLE_DIR}/"], target, boot.start)


def read_bundle(target: Path) -> dict[str, str]:
    """The bundle's files on a card by path inside the bundle ("broker/acl"); empty
    when there is none."""
    boot = boot_partition(target)
    prefix = f"::/{BUNDLE_DIR}/"
    listing = _mtools(["mdir", "-/", "-b", prefix], target, boot.start, check=False)
    files = {}
    for line in listing.splitlines():
        if line.startswith(prefix) and not line.endswith("/"):
            files[line.removeprefix(prefix)] = _mtools(["mtype", line], target, boot.start)
    return files


def assemble(
    out: Path,
    boot_dir: Path,
    root_dir: Path | None,
    boot_mib: int = 256,
    root_mib: int = 2048,
    data_mib: int = 512,
    fat: int = 32,
    data_dir: Path | None = None,
) -> list[Partition]:
    """A disk image: boot (FAT, files from boot_dir), root (ext4 from root_dir, mounted
    read-only on the device) and data (ext4 for the ledger and the broker's queue,
    seeded from data_dir with its owners), 1 MiB aligned."""
    sfdisk = _tool("sfdisk", "fdisk")
    mkfs_vfat = _tool("mkfs.vfat", "dosfstools")
    mkfs_ext4 = _tool("mkfs.ext4", "e2fsprogs")
    mib = 1024 * 1024
    layout = [(boot_mib, "c" if fat == 32 else "e"), (root_mib, "83"), (data_mib, "83")]
    total = (1 + sum(size for size, _ in layout)) * mib
    with open(out, "wb") as handle:
        handle.truncate(total)
    script, start = "label: dos\nlabel-id: 0x6b696f73\n", 2048
    for index, (size, kind) in enumerate(layout):
        sectors = size * mib // SECTOR
        boot_flag = ", bootable" if index == 0 else ""
        script += f"start={start}, size={sectors}, type={kind}{boot_flag}\n"
        start += sectors
    result = subprocess.run([sfdisk, "--no-reread", "--no-tell-kernel", str(out)],
                            input=script, capture_output=True, text=True, timeout=60)  # fmt: skip
    if result.returncode != 0:
        raise CardError(f"sfdisk: {result.stderr.strip()}")
    parts = partitions(out)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    if os.environ.get("SOURCE_DATE_EPOCH"):  # reproducible builds: fixed file system times
        env["E2FSPROGS_FAKE_TIME"] = os.environ["SOURCE_DATE_EPOCH"]
    with tempfile.TemporaryDirectory() as tmp:
        pieces = []
        boot_fs = Path(tmp) / "boot.vfat"
        subprocess.run([mkfs_vfat, "-F", str(fat), "-n", "BOOT", "-i", "6b696f73", "-C",
                        str(boot_fs), str(boot_mib * 1024)], check=True, capture_output=True,
                       timeout=120)  # fmt: skip
        entries = [str(p) for p in sorted(boot_dir.iterdir())]
        if entries:
            subprocess.run([_tool("mcopy", "mtools"), "-s", "-i", str(boot_fs), *entries, "::/"],
                           check=True, capture_output=True, env=env, timeout=600)  # fmt: skip
        pieces.append(boot_fs)
        ext4 = (("rootfs", root_dir, root_mib), ("kioskdata", data_dir, data_mib))
        for label, folder, size in ext4:
            fs = Path(tmp) / f"{label}.ext4"
            args = [mkfs_ext4, "-q", "-F", "-L", label, "-E", "root_owner=0:0"]
            if folder is not None:
                args += ["-d", str(folder)]
            result = subprocess.run([*args, str(fs), f"{size}M"], capture_output=True,
                                    text=True, env=env, timeout=600)  # fmt: skip
            if result.returncode != 0:
                raise CardError(f"mkfs.ext4 {label}: {result.stderr.strip()}")
            pieces.append(fs)
        with open(out, "r+b") as image:
            for part, piece in zip(parts, pieces, strict=True):
                _copy_sparse(piece, image, part.start)
    return parts


def _copy_sparse(source: Path, image, offset: int, chunk: int = 1024 * 1024) -> None:
    """Copy a file system into the image, skipping all-zero chunks (the image is sparse)."""
    zero = bytes(chunk)
    with open(source, "rb") as handle:
        position = offset
        while block := handle.read(chunk):
            if block != zero[: len(block)]:
                image.seek(position)
                image.write(block)
            position += len(block)
