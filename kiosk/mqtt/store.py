"""The shop controller's own database: applied events, moves, counts, levels, kiosks.

SQLite by default; PostgreSQL (or anything peewee's db_url knows) given a URL.
Applying an event is idempotent: (device, seq) is unique, so a redelivered or
resent event changes nothing; the same (device, seq) with other content is a
conflict the caller dead-letters.

On-hand per SKU = the latest count's quantity plus every move that took effect
after that count (or the sum of all moves when never counted). Moves arrive in
any order; one that took effect before the latest count is absorbed by it, which
is what the shelf did too. A count never overwrites a sale made after it.
"Before" and "after" between a count and a move of the same device follow that
device's seq, not its clock (see apply_events).

ORDER. A move takes effect at its event's time, but never later than the moment
the controller applied it (nothing happened after the controller heard of it; the
future is refused by topics.py). Between a count and a move:
  * from two devices, their times decide;
  * from one device, a move with a higher seq than the count's came after it,
    whatever the times say (seq is the order the device did things in);
  * from one device, a move with a lower seq came after the count only if its time
    is later than the counted moment (a sale rung up between counting a shelf and
    posting the count) and both were made with a synchronised clock; if either
    carries the "unsynced" clock mark, the count absorbs it.
Two counts of one SKU compare the same way: one device's counts by time (then seq)
when both clocks were synchronised, by seq otherwise; different devices' by time.

The schema carries a version (PRAGMA user_version on SQLite, table schema_version
elsewhere); open_store migrates an older store forward (playhouse.migrate).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    Database,
    DatabaseProxy,
    IntegerField,
    Model,
    SqliteDatabase,
    TextField,
    fn,
)
from playhouse.db_url import connect as connect_url
from playhouse.migrate import SchemaMigrator, migrate

from kiosk.mqtt.topics import KioskStatus, StockEvent, ts_text

store_db = DatabaseProxy()
# 0: the first schema (no version kept); 1: event digests and clock marks, the latest
# count's device and seq, dead letters counted by content; 2: the item master (items,
# versions, the audit trail of changes, scheduled changes) and each kiosk's version;
# 3: levels, moves and counts in 64 bits on servers; 4: the web view's tables (attendant
# alerts, web users, the audit of manual adjustments), new tables only; 5: the transaction
# journal (kiosk.mqtt.journal_store) and each count's correction to the level (KPIs).
SCHEMA_VERSION = 5
UNSYNCED = "unsynced"  # an event's clock mark: made before the kiosk's clock was synchronised


def ts(moment: datetime) -> str:
    """A time as the store keeps it (topics.TS_FORMAT)."""
    return ts_text(moment)


class StoreModel(Model):
    class Meta:
        database = store_db
        legacy_table_names = False


class AppliedEvent(StoreModel):
    device = CharField(max_length=32)
    seq = IntegerField()
    kind = CharField(max_length=10)
    txn = CharField(max_length=64)
    ts = CharField(max_length=32)
    applied_at = CharField(max_length=32)
    digest = CharField(max_length=64, null=True)  # StockEvent.digest; null before version 1
    clock = CharField(max_length=8, null=True)  # "synced", "unsynced" or not said

    class Meta:
        indexes = ((("device", "seq"), True),)


class Move(StoreModel):
    device = CharField(max_length=32)
    seq = IntegerField()
    sku = CharField(max_length=32)
    kind = CharField(max_length=10)
    delta = BigIntegerField()
    at = CharField(max_length=32)
    clock = CharField(max_length=8, null=True)  # the event's clock mark

    class Meta:
        indexes = ((("sku", "at"), False),)


class CountRecord(StoreModel):
    device = CharField(max_length=32)
    seq = IntegerField()
    sku = CharField(max_length=32)
    qty = BigIntegerField()
    at = CharField(max_length=32)
    # What the count changed the shop's level by (counted minus what the controller
    # expected); null: an older count, or one that an earlier count outdated.
    diff = BigIntegerField(null=True)


class StockLevel(StoreModel):
    sku = CharField(max_length=32, primary_key=True)
    on_hand = BigIntegerField(default=0)
    count_at = CharField(max_length=32, null=True)  # the latest count that set it
    count_device = CharField(max_length=32, null=True)  # ... which device counted
    count_seq = IntegerField(null=True)  # ... and that device's seq for the count
    count_clock = CharField(max_length=8, null=True)  # ... and its clock mark
    updated_at = CharField(max_length=32)


class KioskState(StoreModel):
    device = CharField(max_length=32, primary_key=True)
    online = BooleanField(default=False)
    last_seen = CharField(max_length=32, null=True)
    outbox = IntegerField(default=0)
    printer = CharField(max_length=16, default="ok")
    applied_to = IntegerField(default=0)  # every seq up to here is applied
    reported_seq = IntegerField(null=True)  # the kiosk's own latest seq (from its status)
    catalog_version = IntegerField(null=True)  # the item master version it sells from
    catalog_error = TextField(null=True)  # why it refused the latest version it was sent


class DeadLetter(StoreModel):
    topic = CharField(max_length=200)
    payload = TextField()
    error = TextField()
    received_at = CharField(max_length=32)
    # sha256 of topic and payload: the same message again (a retained one comes back on
    # every subscribe) counts up `times` instead of adding a row
    digest = CharField(max_length=64, null=True, unique=True)
    times = IntegerField(null=True)
    last_at = CharField(max_length=32, null=True)
    # A refused stock event whose device and seq could be read: the gap check passes
    # over that seq instead of asking the kiosk to resend it for ever
    device = CharField(max_length=32, null=True)
    seq = IntegerField(null=True)


class SkuInfo(StoreModel):
    sku = CharField(max_length=32, primary_key=True)
    name = CharField(max_length=120)
    case_pack = IntegerField(default=1)


class MasterItem(StoreModel):
    """One item of the shop's item master (kiosk.mqtt.master), as of `version`."""

    sku = CharField(max_length=32, primary_key=True)
    name = CharField(max_length=120)
    price = CharField(max_length=24)  # decimal text in the currency's unit
    tax_code = CharField(max_length=8)
    unit = CharField(max_length=4, default="each")
    cost = CharField(max_length=24, null=True)
    active = BooleanField(default=True)
    min_age = IntegerField(default=0)
    kit = CharField(max_length=10, default="")
    components = TextField(default="")  # "SKU*qty;..." sorted
    bom_version = IntegerField(default=0)  # counts changes of the components
    barcodes = TextField(default="")  # "key*pack;..." sorted (stored barcode keys)
    case_pack = IntegerField(default=1)
    lead_time_days = IntegerField(null=True)  # null: [controller] lead_time_days
    reorder_point = IntegerField(null=True)  # null: worked out from demand
    safety_stock = IntegerField(null=True)  # null: [controller] safety_days of demand
    version = IntegerField(index=True)  # the master version that last changed it
    digest = CharField(max_length=64)  # sha256 of what kiosks get (master.record)


class CatalogVersion(StoreModel):
    version = IntegerField(primary_key=True)
    created_at = CharField(max_length=32)
    staff = CharField(max_length=32, null=True)
    note = CharField(max_length=200)
    checksum = CharField(max_length=64)  # of the whole version (master.checksum)
    items = IntegerField()


class CatalogChange(StoreModel):
    """The audit trail: who changed which field of which item, when, from what to what."""

    version = IntegerField(index=True)
    at = CharField(max_length=32)
    staff = CharField(max_length=32, null=True)
    sku = CharField(max_length=32, index=True)
    field = CharField(max_length=32)
    old = TextField(null=True)
    new = TextField(null=True)


class ScheduledChange(StoreModel):
    """A change waiting for its effective time; it becomes a version then."""

    sku = CharField(max_length=32, index=True)
    field = CharField(max_length=32)
    value = TextField()
    effective_at = CharField(max_length=32, index=True)
    staff = CharField(max_length=32, null=True)
    created_at = CharField(max_length=32)
    state = CharField(max_length=10, default="pending", index=True)  # applied, refused
    version = IntegerField(null=True)
    error = TextField(null=True)


class Alert(StoreModel):
    """An attendant alert a kiosk raised (kiosk.mqtt.alerts); open until acknowledged.
    Unique by the kiosk's own id, so a QoS 1 redelivery is the same alert."""

    device = CharField(max_length=32)
    alert_id = CharField(max_length=32)
    kind = CharField(max_length=16)
    text = TextField()  # at most topics' alert text limit
    raised_at = CharField(max_length=32)
    acked_at = CharField(max_length=32, null=True, index=True)
    acked_by = CharField(max_length=64, null=True)

    class Meta:
        indexes = ((("device", "alert_id"), True),)


class WebUser(StoreModel):
    """A manager or attendant of the web view: a password hash (never a staff PIN),
    failed attempts and the lockout they earned."""

    name = CharField(max_length=32, primary_key=True)
    password_hash = CharField(max_length=200)
    role = CharField(max_length=16)  # manager, attendant
    failed_attempts = IntegerField(default=0)
    locked_until = CharField(max_length=32, null=True)
    created_at = CharField(max_length=32)


class StockAdjustment(StoreModel):
    """The audit of a manual adjustment from the web view: who, why, and the "@web"
    stock event (device, seq) that applied it."""

    sku = CharField(max_length=32, index=True)
    delta = BigIntegerField()
    reason = TextField()
    user = CharField(max_length=32)
    at = CharField(max_length=32)
    device = CharField(max_length=32)
    seq = IntegerField()


class JournalTxn(StoreModel):
    """One money transaction's journal (kiosk.mqtt.journal_contract), from its part 1.
    Amounts are decimal text: exact, and summed as Decimals (kiosk.mqtt.kpis)."""

    device = CharField(max_length=32)
    seq = IntegerField()  # the transaction's stock event
    txn = CharField(max_length=64)
    kind = CharField(max_length=10)
    ts = CharField(max_length=32, index=True)
    clock = CharField(max_length=8, null=True)
    parts = IntegerField()
    currency = CharField(max_length=3)
    net = CharField(max_length=24)
    tax = CharField(max_length=24)
    total = CharField(max_length=24)
    discount = CharField(max_length=24)
    rounding = CharField(max_length=24)
    change = CharField(max_length=24)
    tenders = TextField()  # JSON [[kind, amount], ...]
    taxes = TextField()  # JSON [[code, rate, net, tax], ...]
    applied_at = CharField(max_length=32)

    class Meta:
        indexes = ((("device", "seq"), True),)


class JournalPart(StoreModel):
    """Each (device, seq, part) applied, with its digest: exactly once, conflicts seen."""

    device = CharField(max_length=32)
    seq = IntegerField()
    part = IntegerField()
    digest = CharField(max_length=64)

    class Meta:
        indexes = ((("device", "seq", "part"), True),)


class JournalLine(StoreModel):
    """A transaction's lines summed per SKU and condition (signed: returns below zero),
    with the transaction's kind and time so KPIs read one table."""

    device = CharField(max_length=32)
    seq = IntegerField()
    kind = CharField(max_length=10)
    ts = CharField(max_length=32)
    sku = CharField(max_length=32)
    condition = CharField(max_length=12, null=True)
    qty = CharField(max_length=24)
    net = CharField(max_length=24)
    total = CharField(max_length=24)
    discount = CharField(max_length=24)

    class Meta:
        indexes = ((("ts", "sku"), False), (("device", "seq"), False))


class SchemaVersion(StoreModel):
    """The schema version on servers without SQLite's PRAGMA user_version."""

    version = IntegerField()


MODELS = [
    AppliedEvent,
    Move,
    CountRecord,
    StockLevel,
    KioskState,
    DeadLetter,
    SkuInfo,
    MasterItem,
    CatalogVersion,
    CatalogChange,
    ScheduledChange,
    Alert,
    WebUser,
    StockAdjustment,
    JournalTxn,
    JournalPart,
    JournalLine,
]


def open_store(database: str) -> Database:
    """A path opens SQLite (WAL); a URL (postgresql://...) opens that server. A store
    made by an older version is migrated forward first."""
    if "://" in database:
        db = connect_url(database)
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        db = SqliteDatabase(
            database,
            pragmas={"journal_mode": "wal", "synchronous": "FULL", "busy_timeout": 10_000},
            lock_type="IMMEDIATE",
        )
    store_db.initialize(db)
    db.connect(reuse_if_open=True)
    sqlite = isinstance(db, SqliteDatabase)
    if sqlite and db.pragma("user_version") >= SCHEMA_VERSION:
        return db  # the common case: nothing to create or migrate
    if not sqlite:
        db.create_tables([SchemaVersion], safe=True)
    with db.atomic():  # one migrator at a time (SQLite: BEGIN IMMEDIATE; else a lock)
        if not sqlite:
            db.execute_sql(f"LOCK TABLE {SchemaVersion._meta.table_name} IN EXCLUSIVE MODE")
        version = schema_version(db)
        if version < SCHEMA_VERSION:
            if AppliedEvent._meta.table_name in db.get_tables():
                if sqlite:  # the store as committed, kept beside it (PostgreSQL: its backups)
                    from kiosk.update.dbcopy import keep_copy  # noqa: PLC0415

                    keep_copy(Path(database), version)
                _migrate(db, version)
            db.create_tables(MODELS, safe=True)
            _set_schema_version(db, SCHEMA_VERSION)
    return db


def schema_version(db: Database) -> int:
    if isinstance(db, SqliteDatabase):
        return int(db.pragma("user_version"))
    row = SchemaVersion.select(fn.MAX(SchemaVersion.version)).scalar()
    return int(row or 0)


def _set_schema_version(db: Database, version: int) -> None:
    if isinstance(db, SqliteDatabase):
        db.execute_sql(f"PRAGMA user_version = {int(version)}")
    else:
        SchemaVersion.delete().execute()
        SchemaVersion.create(version=version)


def _migrate(db: Database, version: int) -> None:
    """Forward from `version` to SCHEMA_VERSION, inside the caller's transaction.
    Each step checks what is there, so a step half-done by hand is finished."""
    migrator = SchemaMigrator.from_database(db)

    def missing(model: type[Model], column: str) -> bool:
        return column not in {c.name for c in db.get_columns(model._meta.table_name)}

    if version < 1:
        steps = []
        for model, column, field in (
            (AppliedEvent, "digest", CharField(max_length=64, null=True)),
            (AppliedEvent, "clock", CharField(max_length=8, null=True)),
            (StockLevel, "count_device", CharField(max_length=32, null=True)),
            (StockLevel, "count_seq", IntegerField(null=True)),
            (StockLevel, "count_clock", CharField(max_length=8, null=True)),
            (Move, "clock", CharField(max_length=8, null=True)),
            (DeadLetter, "digest", CharField(max_length=64, null=True)),
            (DeadLetter, "times", IntegerField(null=True)),
            (DeadLetter, "last_at", CharField(max_length=32, null=True)),
            (DeadLetter, "device", CharField(max_length=32, null=True)),
            (DeadLetter, "seq", IntegerField(null=True)),
        ):
            if missing(model, column):
                steps.append(migrator.add_column(model._meta.table_name, column, field))
        migrate(*steps)
        # The latest count's device and seq, from the count that set each level.
        level, count = StockLevel._meta.table_name, CountRecord._meta.table_name
        for column in ("device", "seq"):
            db.execute_sql(
                f"UPDATE {level} SET count_{column} = (SELECT c.{column} FROM {count} c "
                f"WHERE c.sku = {level}.sku AND c.at = {level}.count_at "
                f"ORDER BY c.seq DESC LIMIT 1) WHERE count_at IS NOT NULL"
            )
        DeadLetter.update(times=1, last_at=DeadLetter.received_at).where(
            DeadLetter.times.is_null()
        ).execute()
    if version < 2:  # the item master's tables are new: create_tables makes them
        steps = [
            migrator.add_column(KioskState._meta.table_name, column, field)
            for column, field in (
                ("catalog_version", IntegerField(null=True)),
                ("catalog_error", TextField(null=True)),
            )
            if missing(KioskState, column)
        ]
        migrate(*steps)
    # 4: the web view's tables are new: create_tables makes them (5's journal too).
    if version < 5 and missing(CountRecord, "diff"):
        table = CountRecord._meta.table_name
        migrate(migrator.add_column(table, "diff", BigIntegerField(null=True)))
    if version < 3 and not isinstance(db, SqliteDatabase):
        # Levels, moves and counts in 64 bits: PostgreSQL's INTEGER stops at 2^31-1, which
        # ~2,148 receipts of the largest size reach (SQLite's integers are 64-bit already).
        migrate(
            *(
                migrator.alter_column_type(model._meta.table_name, column, BigIntegerField())
                for model, column in (
                    (Move, "delta"),
                    (CountRecord, "qty"),
                    (StockLevel, "on_hand"),
                )
            )
        )


MAX_PARAMS = 999  # parameters in one statement: SQLite's oldest default limit


def insert_rows(model, rows: list[dict]) -> None:
    """Rows (all with the same keys, plain values) into the model's table with prepared
    statements of up to MAX_PARAMS values (many rows each): peewee's insert_many writes
    SQL text for every value, which was most of a 100,000-item import and half the
    controller's apply time. Many rows a statement, because SQLite steps each statement
    with the GIL released: one step a row handed the GIL to paho's thread and back once
    a row. SQLite and PostgreSQL alike (db.param)."""
    if not rows:
        return
    db = model._meta.database
    keys = list(rows[0])
    columns = ", ".join(f'"{model._meta.fields[key].column_name}"' for key in keys)
    row_marks = f"({', '.join([db.param] * len(keys))})"

    def sql(count: int) -> str:
        return (f'INSERT INTO "{model._meta.table_name}" ({columns}) '  # noqa: S608 - ours
                f"VALUES {', '.join([row_marks] * count)}")  # fmt: skip

    values = itemgetter(*keys) if len(keys) > 1 else lambda row: (row[keys[0]],)
    flat = [value for row in rows for value in values(row)]
    per = max(1, MAX_PARAMS // len(keys))  # rows a statement
    width = per * len(keys)
    whole = len(rows) // per * width  # values in whole statements
    cursor = db.cursor()
    if whole:
        cursor.executemany(sql(per), [flat[at : at + width] for at in range(0, whole, width)])
    if whole < len(flat):
        cursor.execute(sql((len(flat) - whole) // len(keys)), flat[whole:])


def select_in(model, columns: tuple[str, ...], where: str, values: list, *params) -> list[tuple]:
    """`SELECT columns FROM model WHERE <where> AND <where's last column> IN (values)`, in
    chunks of 500, as plain prepared SQL: peewee built the text of an IN list of 500 values
    slower than the database ran it (SQLite and PostgreSQL alike: db.param). `where` is
    our own SQL text with a placeholder per param, ending in the column of the IN list."""
    db = model._meta.database
    names = ", ".join(f'"{model._meta.fields[c].column_name}"' for c in columns)
    rows: list[tuple] = []
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        sql = (f'SELECT {names} FROM "{model._meta.table_name}" '  # noqa: S608 - our names
               f"WHERE {where} IN ({', '.join([db.param] * len(chunk))})")  # fmt: skip
        rows += db.execute_sql(sql, (*params, *chunk)).fetchall()
    return rows


class Outcome(NamedTuple):
    changed: set[str]  # SKUs whose level changed
    fresh: list[StockEvent]  # events applied now
    conflicts: list[StockEvent]  # a (device, seq) applied before, with other content


def apply_event(event: StockEvent, now: datetime) -> set[str] | None:
    """Apply one event (see apply_events); None if it was applied before."""
    outcome = apply_events([event], now)
    return outcome.changed if outcome.fresh else None


def apply_events(events: list[StockEvent], now: datetime) -> Outcome:
    """Apply a batch inside the caller's transaction, with a fixed number of queries
    however large it is (plus one or two per counted SKU). See ORDER for what counts
    as before and after a count."""
    fresh, conflicts = _new_events(events)
    if not fresh:
        return Outcome(set(), [], conflicts)
    stamp = ts(now)
    moments = {id(e): ts(e.ts) for e in fresh}  # each event's time written once
    insert_rows(
        AppliedEvent,
        [
            {"device": e.device, "seq": e.seq, "kind": e.kind, "txn": e.txn, "ts": moments[id(e)],
             "applied_at": stamp, "digest": e.digest, "clock": e.clock}
            for e in fresh
        ],
    )  # fmt: skip
    moves = []
    for e in fresh:
        if e.kind == "count":
            continue
        deltas: dict[str, int] = defaultdict(int)
        for sku, delta in e.moves:
            deltas[sku] += delta
        at = moments[id(e)] if e.ts <= now else stamp  # ts(min(e.ts, now))
        moves += [
            {
                "device": e.device,
                "seq": e.seq,
                "sku": sku,
                "kind": e.kind,
                "delta": d,
                "at": at,
                "clock": e.clock,
            }
            for sku, d in deltas.items()
        ]
    insert_rows(Move, moves)
    changed: set[str] = set()
    recounted: set[str] = set()
    counts = sorted(
        ((ts(min(e.counted_at[sku], now)), e.seq, sku, qty, e) for e in fresh
         if e.kind == "count" for sku, qty in (e.counted or {}).items()),
        key=lambda item: item[:2],
    )  # fmt: skip
    batch: dict[str, int] = defaultdict(int)  # this batch's moves, not in the levels yet
    for move in moves:
        batch[move["sku"]] += move["delta"]
    for at, seq, sku, qty, e in counts:
        record = CountRecord.insert(device=e.device, seq=seq, sku=sku, qty=qty, at=at).execute()
        diff = _recount(sku, qty, at, e, now)  # its SUM includes this batch's moves
        if diff is not None:
            diff -= batch.pop(sku, 0)  # the correction: what the moves alone did not explain
            CountRecord.update(diff=diff).where(CountRecord.id == record).execute()
            changed.add(sku)
            recounted.add(sku)
    skus = sorted({m["sku"] for m in moves} - recounted)
    columns = ("sku", "count_at", "count_device", "count_seq", "count_clock")
    latest = {
        sku: (at, device, seq, clock)
        for sku, at, device, seq, clock in select_in(
            StockLevel, columns, "count_at IS NOT NULL AND sku", skus
        )
    }
    totals: dict[str, int] = defaultdict(int)
    for move in moves:
        sku = move["sku"]
        if sku in recounted:
            continue
        count = latest.get(sku)
        if count is not None and not _after(
            move["device"], move["seq"], move["at"], move["clock"], *count
        ):
            continue  # happened before the latest count: the count already saw it
        totals[sku] += move["delta"]
        changed.add(sku)
    _add_to_levels(totals, stamp)
    return Outcome(changed, fresh, conflicts)


def _add_to_levels(totals: dict[str, int], stamp: str) -> None:
    """Every level's delta in one prepared upsert (executemany): building one ORM query
    per SKU cost more than the database did (SQLite and PostgreSQL share the syntax)."""
    if not totals:
        return
    db = store_db.obj
    table, p = StockLevel._meta.table_name, db.param
    sql = (
        f"INSERT INTO {table} (sku, on_hand, updated_at) VALUES ({p}, {p}, {p}) "  # noqa: S608
        f"ON CONFLICT (sku) DO UPDATE SET on_hand = {table}.on_hand + EXCLUDED.on_hand, "
        "updated_at = EXCLUDED.updated_at"
    )
    cursor = db.cursor()
    cursor.executemany(sql, [(sku, delta, stamp) for sku, delta in sorted(totals.items())])


def _after(device, seq, at, clock, count_at, count_device, count_seq, count_clock) -> bool:
    """Did a move (device, seq, at, clock) take effect after the count (count_...)?
    See ORDER in the module's text."""
    if device == count_device and count_seq is not None:
        if seq > count_seq:
            return True  # made after the count was posted
        if UNSYNCED in (clock, count_clock):
            return False  # made before it, and the clock cannot say more
    return at > count_at


def _new_events(events: list[StockEvent]) -> tuple[list[StockEvent], list[StockEvent]]:
    """(events never applied, events whose (device, seq) was applied with other content)."""
    by_device: dict[str, dict[int, StockEvent]] = defaultdict(dict)
    conflicts = []
    for event in events:
        first = by_device[event.device].setdefault(event.seq, event)  # repeats in the batch
        if first is not event and first.digest != event.digest:
            conflicts.append(event)
    fresh = []
    param = store_db.obj.param
    for device, seqs in by_device.items():
        wanted = sorted(seqs)
        seen: dict[int, str | None] = dict(
            select_in(AppliedEvent, ("seq", "digest"), f"device = {param} AND seq", wanted, device)
        )
        for seq in wanted:
            if seq not in seen:
                fresh.append(seqs[seq])
            elif seen[seq] is not None and seen[seq] != seqs[seq].digest:
                conflicts.append(seqs[seq])
    return fresh, conflicts


def _recount(sku: str, qty: int, at: str, e: StockEvent, now: datetime) -> int | None:
    """Set the level from a count; returns what that changed it by (None: an older
    count than the one already applied, which changes nothing)."""
    device, seq, clock = e.device, e.seq, e.clock
    level = StockLevel.get_or_none(StockLevel.sku == sku)
    if level is not None and level.count_at is not None:
        if level.count_device == device and UNSYNCED in (clock, level.count_clock):
            newer = seq > (level.count_seq or 0)
        else:
            newer = (at, seq) > (level.count_at, level.count_seq or 0)
        if not newer:
            return None  # an older count than the one already applied
    trusted = Move.clock.is_null() | (Move.clock != UNSYNCED)
    same = Move.device == device
    later = (same & (Move.seq > seq)) | (~same & (Move.at > at))
    if clock != UNSYNCED:
        later |= same & (Move.seq < seq) & (Move.at > at) & trusted
    after = Move.select(fn.COALESCE(fn.SUM(Move.delta), 0)).where((Move.sku == sku) & later)
    on_hand = qty + int(after.scalar())
    fields = {
        "on_hand": on_hand,
        "count_at": at,
        "count_device": device,
        "count_seq": seq,
        "count_clock": clock,
    }
    StockLevel.insert(sku=sku, updated_at=ts(now), **fields).on_conflict(
        conflict_target=[StockLevel.sku],
        update={**{getattr(StockLevel, k): v for k, v in fields.items()},
                StockLevel.updated_at: ts(now)},
    ).execute()  # fmt: skip
    return on_hand - (level.on_hand if level is not None else 0)


def record_status(status: KioskStatus) -> None:
    preserve = [
        KioskState.online,
        KioskState.last_seen,
        KioskState.outbox,
        KioskState.printer,
        KioskState.reported_seq,
    ]
    if status.catalog is not None:  # a kiosk that does not say keeps what it said last
        preserve += [KioskState.catalog_version, KioskState.catalog_error]
    KioskState.insert(
        device=status.device,
        online=status.online,
        last_seen=ts(status.ts),
        outbox=status.outbox,
        printer=status.printer,
        reported_seq=status.seq,
        catalog_version=status.catalog,
        catalog_error=_text(status.catalog_error, 200) if status.catalog_error else None,
    ).on_conflict(conflict_target=[KioskState.device], preserve=preserve).execute()


def _text(value: str, limit: int) -> str:
    """Storable anywhere: no NUL (PostgreSQL text refuses it), no lone surrogates."""
    value = value[:limit].replace("\x00", "\\x00")
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def dead_letter(
    topic: str,
    payload: bytes,
    error: str,
    now: datetime,
    refused: tuple[str, int] | None = None,
) -> None:
    """Keep a refused message and why; the same message again counts up `times`."""
    digest = hashlib.sha256(
        topic.encode("utf-8", "backslashreplace") + b"\0" + bytes(payload)
    ).hexdigest()
    stamp = ts(now)
    DeadLetter.insert(
        topic=_text(topic, 200),
        payload=_text(bytes(payload[:2000]).decode("utf-8", "replace"), 2000),
        error=_text(error, 2000),
        received_at=stamp,
        digest=digest,
        times=1,
        last_at=stamp,
        device=refused[0] if refused else None,
        seq=refused[1] if refused else None,
    ).on_conflict(
        conflict_target=[DeadLetter.digest],
        update={
            DeadLetter.times: fn.COALESCE(DeadLetter.times, 1) + 1,
            DeadLetter.last_at: stamp,
            DeadLetter.error: _text(error, 2000),
        },
    ).execute()


WATERMARK_STEP = 10_000  # applied seqs one look moves the watermark over, at most


def advance_watermark(device: str) -> tuple[int, int | None]:
    """Move the device's contiguous watermark forward over applied (and refused) seqs;
    returns (watermark, first seq beyond a gap, or None when there is no gap). Without
    a gap one row answers (a count and a maximum): reading every applied seq past the
    mark, a row at a time, cost the controller's loop more than applying them."""
    state, _ = KioskState.get_or_create(device=device)
    mark = state.applied_to
    beyond = None
    refused = {  # dead-lettered events of this device: resending will not change them
        seq
        for (seq,) in DeadLetter.select(DeadLetter.seq)
        .where((DeadLetter.device == device) & (DeadLetter.seq > mark))
        .tuples()
    }
    if not refused:  # the common case, asked in one row: are the seqs past mark gap-free?
        count, last = (
            AppliedEvent.select(fn.COUNT(AppliedEvent.seq), fn.MAX(AppliedEvent.seq))
            .where((AppliedEvent.device == device) & (AppliedEvent.seq > mark))
            .tuples()
            .get()
        )
        if count == 0 or last - mark == count:  # (device, seq) is unique: none missing
            if count:
                mark = min(last, mark + WATERMARK_STEP)
                KioskState.update(applied_to=mark).where(KioskState.device == device).execute()
            return mark, None
    applied = [
        seq
        for (seq,) in AppliedEvent.select(AppliedEvent.seq)
        .where((AppliedEvent.device == device) & (AppliedEvent.seq > mark))
        .order_by(AppliedEvent.seq)
        .limit(WATERMARK_STEP)
        .tuples()
    ]
    for seq in sorted(refused.union(applied)):
        if seq == mark + 1:
            mark = seq
        else:
            beyond = seq
            break
    if mark != state.applied_to:
        KioskState.update(applied_to=mark).where(KioskState.device == device).execute()
    return mark, beyond
