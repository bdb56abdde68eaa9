"""Opening the ledger: one SQLite file in WAL mode, bound to the models.

Every posting runs in one `BEGIN IMMEDIATE` transaction, so two writers never
deadlock on a lock upgrade, and a power cut leaves either the whole posting or none.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import peewee
from peewee import DatabaseError, SqliteDatabase

from kiosk import i18n
from kiosk.config import Config
from kiosk.ledger import migrations, models
from kiosk.ledger.barcodes import BarcodeParser
from kiosk.ledger.money import TaxPolicy

log = logging.getLogger(__name__)
SCHEMA_VERSION = migrations.LATEST
PROBE = 16 * 1024  # bytes written to find out whether the disk has space
APPEND_ONLY = ("txn", "txn_line", "tender", "stock_move")


class LedgerError(Exception):
    """A posting refused for a reason the user can act on (unknown SKU, over-return ...)."""


class StorageFullError(LedgerError):
    """The ledger's disk is full: the transaction was rolled back whole."""


def storage_error(exc: BaseException, path: Path) -> LedgerError | None:
    """The user-facing error behind a database exception, or None for a bug.

    A full disk can surface as the statement's error or, after SQLite rolled the
    transaction back itself, as "cannot rollback" with the real cause in its context."""
    seen: BaseException | None = exc
    while seen is not None:
        text = str(seen)
        if "database or disk is full" in text:
            return StorageFullError(
                i18n._(
                    "{path}: the disk is full, nothing was written; free space and try again",
                    path=path,
                )
            )
        if text.startswith(migrations.BOUND_PREFIX):
            return LedgerError(i18n._("refused by the ledger: {text}", text=text))
        seen = seen.__cause__ or seen.__context__
    return None


def open_database(path: Path, synchronous: str = "full") -> SqliteDatabase:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Staff PIN hashes live here: 0600 from the start (SQLite gives -wal and -shm the
    # main file's mode), and an older world-readable ledger and its companions fixed.
    from kiosk.files import create_private, restrict  # noqa: PLC0415
    from kiosk.update import dbcopy  # noqa: PLC0415

    # A rollback: a newer version migrated this file. Made usable here, by whatever opens
    # it first (the app at boot, or a technician's command), not by a second Python start
    # before the app (README, "Schemas across an update").
    try:
        said = dbcopy.step_down(path, SCHEMA_VERSION)
    except dbcopy.NewerSchemaError as exc:
        raise LedgerError(str(exc)) from None
    except sqlite3.DatabaseError:
        said = None  # not a database at all: refused below, in the words every open uses
    if said:
        log.warning("%s", said)
    create_private(path, owner_of_folder=True)  # root's `kiosk staff add`: still the kiosk's
    for companion in ("-wal", "-shm", "-journal"):
        restrict(Path(f"{path}{companion}"))
    db = SqliteDatabase(
        str(path),
        pragmas={
            "journal_mode": "wal",
            "synchronous": synchronous.upper(),
            "foreign_keys": 1,
            "busy_timeout": 10_000,
            "cache_size": -16_000,
        },
        lock_type="IMMEDIATE",
    )
    models.database.initialize(db)
    db.connect(reuse_if_open=True)
    with db.atomic():
        db.create_tables(models.MODELS, safe=True)
        for table in APPEND_ONLY:  # posted rows: corrections are new rows, never edits
            for action in ("UPDATE", "DELETE"):
                db.execute_sql(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} "
                    f"BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'posted rows are append-only'); END"
                )
        version = db.execute_sql("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(
                i18n._(
                    "{path}: ledger schema {version} is newer than this software ({ours})",
                    path=path,
                    version=version,
                    ours=SCHEMA_VERSION,
                )
            )
        migrations.upgrade(db, max(version, 1))  # 0: tables made just now, as version 1
    return db


def _disk_full(path: Path) -> bool:
    """SQLite says "disk I/O error" when it cannot even make its -shm file."""
    try:
        return shutil.disk_usage(path.parent).free < PROBE
    except OSError:
        return False


@dataclass
class Ledger:
    """The open ledger and what every posting needs: device, tax policy, barcode rules."""

    db: SqliteDatabase
    config: Config
    policy: TaxPolicy
    parser: BarcodeParser

    @property
    def device(self) -> str:
        return self.config.device.id

    @property
    def path(self) -> Path:
        return Path(self.db.database)

    @classmethod
    def open(cls, config: Config, path: Path | None = None) -> Ledger:
        path = path or config.ledger.path
        try:
            db = open_database(path, config.ledger.synchronous)
        except (OSError, DatabaseError) as exc:
            if _disk_full(Path(path)):
                raise StorageFullError(
                    i18n._(
                        "{path}: cannot open the ledger: the disk is full; free space and try "
                        "again",
                        path=path,
                    )
                ) from None
            raise LedgerError(
                i18n._("{path}: cannot open the ledger: {error}", path=path, error=exc)
            ) from None
        return cls(
            db=db,
            config=config,
            policy=TaxPolicy.from_config(config.money),
            parser=BarcodeParser(config.barcodes, config.money),
        )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic posting; a full disk or a value past the ledger's own bounds
        becomes a one-line LedgerError, with nothing written."""
        try:
            with self.db.atomic():
                yield
        except (sqlite3.Error, peewee.DatabaseError) as exc:
            error = storage_error(exc, self.path)
            if error is None:
                raise
            raise error from None

    def writable(self) -> bool:
        """Whether a write commits now (after a full disk: has space come back?)."""
        try:  # as much as a sale writes, committed, so a full disk must say so
            with self.transaction():
                self.db.execute_sql(f"INSERT INTO space_probe (data) VALUES (zeroblob({PROBE}))")
            with self.transaction():
                self.db.execute_sql("DELETE FROM space_probe")
        except StorageFullError:
            return False
        return True

    def next_value(self, counter: str) -> int:
        """Next number of a gap-free counter; call inside the posting's transaction."""
        cursor = self.db.execute_sql(
            "INSERT INTO counter (name, value) VALUES (?, 1) "
            "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
            (counter,),
        )
        return cursor.fetchone()[0]

    def peek_value(self, counter: str) -> int:
        row = self.db.execute_sql("SELECT value FROM counter WHERE name = ?", (counter,)).fetchone()
        return row[0] if row else 0
