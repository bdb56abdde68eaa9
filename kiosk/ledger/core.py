"""Opening the ledger: one SQLite file in WAL mode, bound to the models.

Every posting runs in one `BEGIN IMMEDIATE` transaction, so two writers never
deadlock on a lock upgrade, and a power cut leaves either the whole posting or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from peewee import DatabaseError, SqliteDatabase

from kiosk.config import Config
from kiosk.ledger import models
from kiosk.ledger.barcodes import BarcodeParser
from kiosk.ledger.money import TaxPolicy

SCHEMA_VERSION = 1
APPEND_ONLY = ("txn", "txn_line", "tender", "stock_move")


class LedgerError(Exception):
    """A posting refused for a reason the user can act on (unknown SKU, over-return ...)."""


def open_database(path: Path, synchronous: str = "full") -> SqliteDatabase:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Staff PIN hashes live here: 0600 from the start (SQLite gives -wal and -shm the
    # main file's mode), and an older world-readable ledger and its companions fixed.
    from kiosk.files import create_private, restrict  # noqa: PLC0415

    create_private(path)
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
        if version == 0:
            db.execute_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version > SCHEMA_VERSION:
            raise LedgerError(
                f"{path}: ledger schema {version} is newer than this software ({SCHEMA_VERSION})"
            )
    return db


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
            raise LedgerError(f"{path}: cannot open the ledger: {exc}") from None
        return cls(
            db=db,
            config=config,
            policy=TaxPolicy.from_config(config.money),
            parser=BarcodeParser(config.barcodes),
        )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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
