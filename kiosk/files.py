"""Files that hold secrets or PIN hashes: created private, corrected when they are not.

Bottom layer: imports nothing from kiosk. Every helper here works by file descriptor
or by rename, so a secret is never, even for a moment, in a file others can read:

* `create_private` makes a file with at most the given mode (O_EXCL, then fchmod:
  the umask cannot widen it and nothing is written before the mode is set);
* `restrict` takes away any permission beyond the given mode from an existing file
  (a ledger made 0644 by an older version becomes 0600);
* `write_private` writes a whole file through a temporary file made 0600 in the same
  folder, then renames it over the target: an existing world-readable file is
  replaced, never written into.

Modes: 0600 for files the service's own user owns (the ledger and its -wal/-shm, the
PIN key); 0640 with the service's group for files root owns and a service reads
(/etc/kiosk/mqtt.pass, the broker's password file).
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import stat
import tempfile
from pathlib import Path

PRIVATE = 0o600
GROUP_READ = 0o640


def restrict(path: Path, mode: int = PRIVATE) -> bool:
    """Take from an existing regular file every permission `mode` does not allow; True
    if it had any. A missing file, a folder or device, and a file another user owns
    (its owner's service corrects it when it opens it) are left alone (False)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return False
    current = stat.S_IMODE(info.st_mode)
    if not stat.S_ISREG(info.st_mode) or not current & ~mode:
        return False
    try:
        os.chmod(path, current & mode)
    except PermissionError:
        return False
    return True


def create_private(path: Path, mode: int = PRIVATE, owner_of_folder: bool = False) -> bool:
    """Make `path` an empty file with exactly `mode` if it does not exist (True), else
    take away what `mode` does not allow (False). Safe against a racing creator.
    `owner_of_folder`: made by root, the file belongs to whoever owns its folder (a
    technician's `kiosk staff add` as root must not lock the kiosk user out of
    /var/lib/kiosk's files)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except FileExistsError:
        restrict(path, mode)
        return False
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits `mode` asks for (0640)
        if owner_of_folder:
            _folder_owner(fd, Path(path))
    finally:
        os.close(fd)
    return True


def _folder_owner(fd: int, path: Path) -> None:
    if os.geteuid() == 0:
        folder = os.stat(path.parent)
        if (folder.st_uid, folder.st_gid) != (0, 0):
            os.fchown(fd, folder.st_uid, folder.st_gid)


def write_private(
    path: Path,
    data: str | bytes,
    mode: int = PRIVATE,
    group: int | None = None,
    keep_owner: bool = True,
    replace: bool = True,
    owner_of_folder: bool = False,
) -> None:
    """Replace `path` with `data`, in a file that was private from its first byte.

    The temporary file is made 0600 next to `path`, written and synced, given `mode`
    (and `group`, a gid), and renamed over `path`. As root, an existing file's owner
    and group are kept (`keep_owner`) unless `group` says otherwise. Refuses to
    replace anything but a regular file (a device, a fifo, /dev/stdout). With
    `replace=False` an existing file wins: FileExistsError, and it is left as it was
    (for a file two processes may create at once, e.g. the PIN key). For
    `owner_of_folder` see `create_private`."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    old = None
    with contextlib.suppress(FileNotFoundError):
        old = os.stat(path)
        if not stat.S_ISREG(old.st_mode):
            raise OSError(errno.EEXIST, "not a regular file: refusing to replace it", str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
            if os.geteuid() == 0:
                uid = old.st_uid if (old is not None and keep_owner) else -1
                gid = group if group is not None else (old.st_gid if old and keep_owner else -1)
                if uid != -1 or gid != -1:
                    os.fchown(handle.fileno(), uid, gid)
                elif owner_of_folder:
                    _folder_owner(handle.fileno(), path)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and never over an existing file
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def give_group(path: Path, gid: int, mode: int = GROUP_READ) -> None:
    """Owner root (as root), group `gid`, `mode`: for a file a service reads by group."""
    if os.geteuid() == 0:
        os.chown(path, 0, gid)
    os.chmod(path, mode)


def user_ids(name: str) -> tuple[int, int] | None:
    """(uid, primary gid) of a user of this machine, or None."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def can_reach(path: Path, uid: int, gid: int) -> Path | None:
    """The first folder on the way to folder `path` (itself included) that user uid
    (group gid and its other groups) cannot enter, or None when every one lets it in."""
    try:
        name = pwd.getpwuid(uid).pw_name
        groups = {gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}
    except KeyError:
        groups = {gid}
    path = Path(path).absolute()
    for folder in [*reversed(path.parents), path]:
        try:
            info = os.stat(folder)
        except FileNotFoundError:
            return None
        if uid == 0:
            continue
        if info.st_uid == uid:
            bit = stat.S_IXUSR
        elif info.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return folder
    return None
