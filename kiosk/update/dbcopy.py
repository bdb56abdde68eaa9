"""A copy of an SQLite database before its schema is migrated, and what an older
version does with a database a newer one migrated (README, "Schemas across an update").

keep_copy: before a migration, the database as it was committed is copied with SQLite's
backup API (a consistent snapshot, WAL included, while the migrating connection holds
its write lock: in WAL mode a second connection reads the last committed state) to
`<name>.schema-<old version>.bak` beside it, synced, 0600. One copy per old version; a
later migration from the same version replaces it.

step_down: every migration so far only adds (tables, nullable columns, triggers), so the
older code can go on reading and writing a migrated file. Each migrated file records,
per schema version, the oldest schema whose code can (table schema_compat). An older
version that finds a newer file steps its version number down to its own when the file
allows it: nothing is copied back, nothing is replayed, and every sale made by the newer
version stays in the same file. When the new version starts again it migrates forward
again (the steps are idempotent: IF NOT EXISTS, columns checked). A future step that is
not backward-compatible sets readable_by to its own version; an older version then
refuses the file (one line naming the pre-migration copy) instead of losing anything.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

COMPAT_TABLE = "schema_compat"


def copy_name(path: Path, version: int) -> Path:
    return path.with_name(f"{path.name}.schema-{version}.bak")


def committed_version(path: Path) -> int | None:
    """The committed schema version of the file at `path`, None if it has no tables
    (a file being created right now)."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        tables = source.execute("SELECT count(*) FROM sqlite_master WHERE type='table'")
        if tables.fetchone()[0] == 0:
            return None
        return int(source.execute("PRAGMA user_version").fetchone()[0])
    finally:
        source.close()
        restore_owner(path)


def restore_owner(path: Path) -> None:
    """SQLite companions (-wal, -shm) root just made while reading or writing a WAL
    database become its owner's again, so the app (the kiosk user) can open it."""
    for companion in ("-wal", "-shm"):
        other = Path(f"{path}{companion}")
        if other.exists():
            _same_owner(path, other)


def keep_copy(path: Path, version: int | None = None) -> Path | None:
    """Copy the committed database at `path` to copy_name(path, version); None when
    there is nothing committed to keep."""
    path = Path(path)
    found = committed_version(path)
    if found is None:
        return None
    version = found if version is None else version
    target = copy_name(path, version)
    partial = target.with_name(target.name + ".part")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    copy = sqlite3.connect(partial)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        copy.close()
        source.close()
    with open(partial, "rb+") as handle:
        os.fsync(handle.fileno())
    _same_owner(path, partial)
    os.replace(partial, target)
    return target


def _same_owner(reference: Path, path: Path) -> None:
    """Root (the boot check) writing the kiosk user's files leaves them the kiosk's."""
    if os.geteuid() != 0:
        return
    info = reference.stat()
    with contextlib.suppress(OSError):
        os.chown(path, info.st_uid, info.st_gid)


def record_compat(connection_execute, versions: dict[int, int]) -> None:
    """Write schema_compat rows (version -> readable_by) through an execute function
    of the migrating connection (inside its transaction)."""
    connection_execute(
        f"CREATE TABLE IF NOT EXISTS {COMPAT_TABLE} (version INTEGER NOT NULL PRIMARY KEY, "
        "readable_by INTEGER NOT NULL)"
    )
    for version, readable_by in sorted(versions.items()):
        connection_execute(
            f"INSERT OR REPLACE INTO {COMPAT_TABLE} (version, readable_by) VALUES (?, ?)",
            (version, readable_by),
        )


class NewerSchemaError(Exception):
    """A newer schema this version cannot use; the message names the way back."""


def step_down(path: Path, mine: int) -> str | None:
    """Let code of schema `mine` open a file a newer version migrated, if the file says
    that code can; returns what was done (for the log), None when nothing was needed."""
    path = Path(path)
    found = committed_version(path)
    if found is None or found <= mine:
        return None
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        try:
            row = db.execute(
                f"SELECT readable_by FROM {COMPAT_TABLE} WHERE version = ?", (version,)
            ).fetchone()
        except sqlite3.OperationalError:
            row = None
        readable_by = int(row[0]) if row else version
        if readable_by > mine:
            db.execute("ROLLBACK")
            kept = sorted(path.parent.glob(f"{path.name}.schema-*.bak"))
            raise NewerSchemaError(
                f"{path}: schema {version} cannot be used by this version (schema {mine}; "
                f"the file needs schema {readable_by} or newer); nothing was changed"
                + (f"; pre-migration copies: {', '.join(p.name for p in kept)}" if kept else "")
            )
        db.execute(f"PRAGMA user_version = {int(mine)}")
        db.execute("COMMIT")
    finally:
        db.close()
    restore_owner(path)
    return (
        f"{path}: schema {version} (written by a newer version) stepped down to {mine}, "
        f"which it allows (readable by {readable_by}); every row kept"
    )
