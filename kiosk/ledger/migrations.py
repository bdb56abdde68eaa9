"""Forward migrations of the ledger schema, keyed by `PRAGMA user_version`.

Version 1 is the schema as `create_tables` makes it. Each later step upgrades a
ledger made by the version before it, inside the opening transaction, so a power
cut leaves the old version or the new one. Steps never rewrite posted rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from peewee import SqliteDatabase

# The ledger's own limits: a second line of defence behind kiosk.numbers, wide
# enough that no valid posting reaches them and tight enough that no sum of
# stock or money can overflow SQLite's 64-bit integers or lose exactness.
MAX_DELTA = 10**9  # base units in one stock move
MAX_BALANCE = 10**12  # base units on hand for one SKU and location
MAX_AMOUNT = 10**12  # any amount of money, a quantity or a price in a posted row
BOUND_PREFIX = "out of range:"

_MONEY_COLUMNS = {
    "txn": ("net", "tax", "total", "discount", "rounding", "change"),
    "txn_line": ("qty", "unit_price", "gross", "discount", "net", "tax", "total"),
    "tender": ("amount",),
}


def _raise(what: str) -> str:
    return f"BEGIN SELECT RAISE(ABORT, '{BOUND_PREFIX} {what}'); END"


def _decimal_out_of_range(column: str) -> str:
    """Decimal TEXT that is not a plain bounded number: not digits with an optional
    sign and point ('NaN', 'abc', '1E+9' and ' ' would CAST to 0 and pass), too long,
    or too large."""
    value = f"NEW.{column}"
    return (
        f"(typeof({value}) != 'text' OR length({value}) > 24 "
        f"OR {value} NOT GLOB '*[0-9]*' OR {value} GLOB '*[^0-9.-]*' "
        f"OR {value} GLOB '?*-*' OR {value} GLOB '*.*.*' "
        f"OR abs(CAST({value} AS REAL)) > {MAX_AMOUNT})"
    )


def _v2_bounds(db: SqliteDatabase) -> None:
    """Refuse stock moves, balances and amounts past the ledger's limits; a scratch
    table to find out whether a full disk has space again (Ledger.writable)."""
    sql = db.execute_sql
    sql("CREATE TABLE IF NOT EXISTS space_probe (id INTEGER PRIMARY KEY, data BLOB)")
    sql(
        "CREATE TRIGGER IF NOT EXISTS stock_move_bounds BEFORE INSERT ON stock_move "
        f"WHEN typeof(NEW.delta) != 'integer' OR abs(NEW.delta) > {MAX_DELTA} "
        + _raise(f"a stock move of more than {MAX_DELTA} units")
    )
    for action in ("INSERT", "UPDATE OF on_hand"):
        name = "stock_balance_bounds_" + action.split()[0].lower()
        sql(
            f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {action} ON stock_balance "
            f"WHEN typeof(NEW.on_hand) != 'integer' OR abs(NEW.on_hand) > {MAX_BALANCE} "
            + _raise(f"a stock level beyond {MAX_BALANCE} units")
        )
    for table, columns in _MONEY_COLUMNS.items():
        condition = " OR ".join(_decimal_out_of_range(c) for c in columns)
        sql(
            f"CREATE TRIGGER IF NOT EXISTS {table}_bounds BEFORE INSERT ON {table} "
            f"WHEN {condition} " + _raise(f"an amount or quantity beyond {MAX_AMOUNT} in {table}")
        )


def _v3_payment_journal(db: SqliteDatabase) -> None:
    """The card terminal's payment journal (kiosk.ledger.payments). References only:
    each is too short for a card number (13-19 digits), so none can be stored."""
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS payment ("
        "id INTEGER NOT NULL PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, "
        "kind TEXT NOT NULL CHECK (kind IN ('authorize', 'refund', 'reversal')), "
        "amount TEXT NOT NULL, currency TEXT NOT NULL, terminal TEXT NOT NULL, "
        "state TEXT NOT NULL, "
        "receipt_no TEXT CHECK (length(receipt_no) <= 6), "
        "trace TEXT CHECK (length(trace) <= 8), "
        "terminal_id TEXT CHECK (length(terminal_id) <= 8), "
        "approval TEXT CHECK (length(approval) <= 8), "
        "reference TEXT CHECK (length(reference) <= 48), "
        "txn TEXT, original_id INTEGER REFERENCES payment (id), note TEXT)"
    )
    db.execute_sql("CREATE INDEX IF NOT EXISTS payment_state ON payment (state)")
    db.execute_sql("CREATE INDEX IF NOT EXISTS payment_created_at ON payment (created_at)")


def _v4_refund_requests(db: SqliteDatabase) -> None:
    """Card refunds through the terminal: the return, exchange or void a refund row
    belongs to (JSON, kiosk.ledger.payments.record_request), so a restart between the
    terminal's approval and the posting's commit can post it. Never card data."""
    columns = {row[1] for row in db.execute_sql("PRAGMA table_info(payment)").fetchall()}
    if "request" not in columns:
        db.execute_sql("ALTER TABLE payment ADD COLUMN request TEXT")


def _v5_item_master(db: SqliteDatabase) -> None:
    """The shop controller's item master on this kiosk (kiosk.mqtt.catalog_sync): the
    version it sells from, the items the controller owns (with their digests, so a
    delta's checksum of the whole version is checked without reading every item), and
    the catalog version each sale was priced with, recorded by a trigger inside the
    sale's own transaction (NULL on a kiosk with no controller)."""
    sql = db.execute_sql
    sql(
        "CREATE TABLE IF NOT EXISTS catalog_state (id INTEGER NOT NULL PRIMARY KEY "
        "CHECK (id = 1), version INTEGER NOT NULL, checksum TEXT NOT NULL, "
        "items INTEGER NOT NULL, applied_at TEXT, error TEXT, error_version INTEGER, "
        "error_at TEXT)"
    )
    sql(
        "CREATE TABLE IF NOT EXISTS catalog_item (sku TEXT NOT NULL PRIMARY KEY, "
        "digest TEXT NOT NULL, version INTEGER NOT NULL)"
    )
    sql(
        "CREATE TABLE IF NOT EXISTS txn_catalog (txn_id INTEGER NOT NULL PRIMARY KEY "
        "REFERENCES txn (id), catalog_version INTEGER)"
    )
    sql(
        "CREATE TRIGGER IF NOT EXISTS txn_catalog_version AFTER INSERT ON txn "
        "WHEN NEW.kind IN ('sale', 'exchange') BEGIN "
        "INSERT INTO txn_catalog (txn_id, catalog_version) "
        "SELECT NEW.id, (SELECT version FROM catalog_state WHERE id = 1); END"
    )


def _v6_journal_outbox(db: SqliteDatabase) -> None:
    """The transaction journal's outbox (kiosk.ledger.journal): one row per journal
    message of a money transaction, keyed by the seq of its stock event and its part.
    A new table only: older code never reads it (rolled back, it just stops filling)."""
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS journal_outbox (seq INTEGER NOT NULL, "
        "part INTEGER NOT NULL, parts INTEGER NOT NULL, payload TEXT NOT NULL, "
        "created_at TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', "
        "attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, sent_at TEXT, "
        "PRIMARY KEY (seq, part))"
    )
    db.execute_sql("CREATE INDEX IF NOT EXISTS journal_outbox_state ON journal_outbox (state, seq)")


STEPS: dict[int, Callable[[SqliteDatabase], None]] = {
    2: _v2_bounds,
    3: _v3_payment_journal,
    4: _v4_refund_requests,
    5: _v5_item_master,
    6: _v6_journal_outbox,
}
LATEST = max(STEPS)
# The oldest schema whose code can go on reading and writing a ledger of each schema
# (kiosk.update.dbcopy.step_down: a rollback to an older version keeps using the same
# file, with every sale the newer version made). Every step so far only adds tables,
# nullable columns and triggers that accept what older code writes, so all are readable
# by schema 1. A step that is not must say readable_by = its own version, and the release
# before it should already read its new form (expand, then contract).
READABLE_BY: dict[int, int] = {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1}


def upgrade(db: SqliteDatabase, version: int) -> None:
    """Run every step after `version`, inside the caller's transaction; first keep a
    copy of the ledger as committed (`ledger.db.schema-<version>.bak`, SQLite's backup
    API through a second connection, which sees the committed state in WAL mode)."""
    from kiosk.update import dbcopy  # noqa: PLC0415

    if version < LATEST:
        dbcopy.keep_copy(Path(db.database), version)
    for target in sorted(STEPS):
        if target > version:
            STEPS[target](db)
            db.execute_sql(f"PRAGMA user_version = {target}")
    known = 0
    if db.table_exists(dbcopy.COMPAT_TABLE):
        known = db.execute_sql(f"SELECT count(*) FROM {dbcopy.COMPAT_TABLE}").fetchone()[0]
    if known < len(READABLE_BY):
        dbcopy.record_compat(db.execute_sql, READABLE_BY)
