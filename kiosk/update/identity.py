"""The device's identity, carried from the running root into a freshly written root slot.

First boot (kiosk.provision.firstboot) writes the kiosk's config, passwords, hostname,
time zone, Wi-Fi profile, machine id and, on the broker's host, the broker's config and
units into the root file system. An update writes the other root slot from the build's
image, which has none of it: without this, the new version would boot as an
unprovisioned kiosk (no config, so no app, so a rollback). RAUC's post-install handler
(kiosk.update.layout) copies these paths into the new slot, owners mapped by name (a
newer build may number its system users differently).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from kiosk.update import UpdateError

# Everything kiosk.provision.firstboot and systemd-machine-id-setup write into /etc.
PATHS = (
    "etc/kiosk",
    "etc/hostname",
    "etc/hosts",
    "etc/localtime",
    "etc/timezone",
    "etc/machine-id",
    "etc/default/crda",
    "etc/NetworkManager/system-connections",
    "etc/systemd/system/multi-user.target.wants/mosquitto.service",
    "etc/systemd/system/multi-user.target.wants/kiosk-controller.service",
)


def _names(root: Path, table: str) -> dict[int, str]:
    try:
        lines = (root / "etc" / table).read_text().splitlines()
    except OSError:
        return {}
    found = {}
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            found.setdefault(int(fields[2]), fields[0])
    return found


def _ids(root: Path, table: str) -> dict[str, int]:
    return {name: number for number, name in _names(root, table).items()}


class _Owners:
    """Source uid/gid -> the target root's id for the same user/group name."""

    def __init__(self, source: Path, target: Path) -> None:
        self.users = (_names(source, "passwd"), _ids(target, "passwd"))
        self.groups = (_names(source, "group"), _ids(target, "group"))

    def map(self, uid: int, gid: int) -> tuple[int, int]:
        def one(number: int, tables: tuple[dict[int, str], dict[str, int]]) -> int:
            names, ids = tables
            name = names.get(number)
            if name is None:
                return number
            if name not in ids:
                raise UpdateError(f"the new root has no user or group {name!r}")
            return ids[name]

        return one(uid, self.users), one(gid, self.groups)


def _copy_one(source: Path, target: Path, owners: _Owners) -> None:
    info = source.lstat()
    uid, gid = owners.map(info.st_uid, info.st_gid)
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir() and not source.is_dir():
        shutil.rmtree(target)
    if source.is_symlink():
        target.symlink_to(os.readlink(source))
    elif source.is_dir():
        target.mkdir(exist_ok=True)
    else:
        shutil.copyfile(source, target)
    os.lchown(target, uid, gid)
    if not source.is_symlink():
        os.chmod(target, info.st_mode & 0o7777)


def carry(source: Path, target: Path) -> list[str]:
    """Copy the identity PATHS present under `source` into the root at `target`
    (replacing what the image had there); returns the paths copied."""
    owners = _Owners(source, target)
    done = []
    for relative in PATHS:
        origin = source / relative
        if not (origin.exists() or origin.is_symlink()):
            continue
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir() and not origin.is_symlink():
            if destination.is_symlink() or destination.is_file():
                destination.unlink()
            elif destination.is_dir():
                shutil.rmtree(destination)
            for folder, dirs, names in os.walk(origin):
                here = Path(folder)
                _copy_one(here, destination / here.relative_to(origin), owners)
                for name in sorted(dirs + names):
                    if (here / name).is_symlink() or not (here / name).is_dir():
                        _copy_one(here / name, destination / here.relative_to(origin) / name,
                                  owners)  # fmt: skip
        else:
            _copy_one(origin, destination, owners)
        done.append("/" + relative)
    return done


def carry_to_device(device: str, source: Path = Path("/")) -> list[str]:
    """Mount the freshly written root slot `device` (a block device), carry the identity
    into it, unmount."""
    if not Path(device).is_block_device():
        raise UpdateError(f"{device}: not a block device (a root slot)")
    with tempfile.TemporaryDirectory(prefix="kiosk-slot-") as mountpoint:
        _run(["mount", "-t", "ext4", "-o", "rw,noatime", device, mountpoint])
        try:
            done = carry(source, Path(mountpoint))
        finally:
            _run(["umount", mountpoint])
    return done


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise UpdateError(f"{' '.join(command)}: {result.stderr.strip() or 'failed'}")
