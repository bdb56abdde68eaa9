"""The shop controller's own database: applied events, moves, counts, levels, kiosks.

SQLite by default; PostgreSQL (or anything peewee's db_url knows) given a URL.
Applying an event is idempotent: (device, seq) is unique, so a redelivered or
resent event changes nothing.

On-hand per SKU = the latest count's quantity plus every move that took effect
after that count (or the sum of all moves when never counted). Moves arrive in
any order; one that took effect before the latest count is absorbed by it, which
is what the shelf did too. A count never overwrites a sale made after it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path

from peewee import (
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

from kiosk.mqtt.topics import TS_FORMAT, StockEvent

store_db = DatabaseProxy()


def ts(moment: datetime) -> str:
    return moment.strftime(TS_FORMAT)


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

    class Meta:
        indexes = ((("device", "seq"), True),)


class Move(StoreModel):
    device = CharField(max_length=32)
    seq = IntegerField()
    sku = CharField(max_length=32)
    kind = CharField(max_length=10)
    delta = IntegerField()
    at = CharField(max_length=32)

    class Meta:
        indexes = ((("sku", "at"), False),)


class CountRecord(StoreModel):
    device = CharField(max_length=32)
    seq = IntegerField()
    sku = CharField(max_length=32)
    qty = IntegerField()
    at = CharField(max_length=32)


class StockLevel(StoreModel):
    sku = CharField(max_length=32, primary_key=True)
    on_hand = IntegerField(default=0)
    count_at = CharField(max_length=32, null=True)  # the latest count that set it
    updated_at = CharField(max_length=32)


class KioskState(StoreModel):
    device = CharField(max_length=32, primary_key=True)
    online = BooleanField(default=False)
    last_seen = CharField(max_length=32, null=True)
    outbox = IntegerField(default=0)
    printer = CharField(max_length=16, default="ok")
    applied_to = IntegerField(default=0)  # every seq up to here is applied
    reported_seq = IntegerField(null=True)  # the kiosk's own latest seq (from its status)


class DeadLetter(StoreModel):
    topic = CharField(max_length=200)
    payload = TextField()
    error = TextField()
    received_at = CharField(max_length=32)


class SkuInfo(StoreModel):
    sku = CharField(max_length=32, primary_key=True)
    name = CharField(max_length=120)
    case_pack = IntegerField(default=1)


MODELS = [AppliedEvent, Move, CountRecord, StockLevel, KioskState, DeadLetter, SkuInfo]


def open_store(database: str) -> Database:
    """A path opens SQLite (WAL); a URL (postgresql://...) opens that server."""
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
    db.create_tables(MODELS, safe=True)
    return db


def apply_event(event: StockEvent, now: datetime) -> set[str] | None:
    """Apply one event (see apply_events); None if it was applied before."""
    changed, fresh = apply_events([event], now)
    return changed if fresh else None


def apply_events(events: list[StockEvent], now: datetime) -> tuple[set[str], list[StockEvent]]:
    """Apply a batch inside the caller's transaction, with a fixed number of queries
    however large it is. Returns the SKUs whose level changed and the events that were
    new (the rest were applied before, or repeat within the batch)."""
    fresh = _new_events(events)
    if not fresh:
        return set(), []
    stamp = ts(now)
    AppliedEvent.insert_many(
        [
            {"device": e.device, "seq": e.seq, "kind": e.kind, "txn": e.txn, "ts": ts(e.ts),
             "applied_at": stamp}
            for e in fresh
        ]
    ).execute()  # fmt: skip
    moves = []
    for e in fresh:
        if e.kind == "count":
            continue
        deltas: dict[str, int] = defaultdict(int)
        for sku, delta in e.moves:
            deltas[sku] += delta
        moves += [
            {"device": e.device, "seq": e.seq, "sku": sku, "kind": e.kind, "delta": d,
             "at": ts(e.ts)}
            for sku, d in deltas.items()
        ]  # fmt: skip
    for start in range(0, len(moves), 500):
        Move.insert_many(moves[start : start + 500]).execute()
    changed: set[str] = set()
    recounted: set[str] = set()
    counts = sorted(
        ((ts(e.counted_at[sku]), sku, qty, e) for e in fresh if e.kind == "count"
         for sku, qty in (e.counted or {}).items()),
        key=lambda item: item[0],
    )  # fmt: skip
    for at, sku, qty, e in counts:
        CountRecord.insert(device=e.device, seq=e.seq, sku=sku, qty=qty, at=at).execute()
        if _recount(sku, qty, at, now):  # its SUM already includes this batch's moves
            changed.add(sku)
            recounted.add(sku)
    skus = sorted({m["sku"] for m in moves} - recounted)
    counted_at = dict(
        StockLevel.select(StockLevel.sku, StockLevel.count_at)
        .where(StockLevel.sku.in_(skus))
        .tuples()
    )
    totals: dict[str, int] = defaultdict(int)
    for move in moves:
        sku = move["sku"]
        if sku in recounted:
            continue
        count_at = counted_at.get(sku)
        if count_at is not None and move["at"] <= count_at:
            continue  # happened before the latest count: the count already saw it
        totals[sku] += move["delta"]
        changed.add(sku)
    for sku, delta in totals.items():
        StockLevel.insert(sku=sku, on_hand=delta, updated_at=stamp).on_conflict(
            conflict_target=[StockLevel.sku],
            update={StockLevel.on_hand: StockLevel.on_hand + delta, StockLevel.updated_at: stamp},
        ).execute()
    return changed, fresh


def _new_events(events: list[StockEvent]) -> list[StockEvent]:
    by_device: dict[str, dict[int, StockEvent]] = defaultdict(dict)
    for event in events:
        by_device[event.device].setdefault(event.seq, event)  # repeats in the batch
    fresh = []
    for device, seqs in by_device.items():
        seen: set[int] = set()
        wanted = sorted(seqs)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            seen |= {
                seq
                for (seq,) in AppliedEvent.select(AppliedEvent.seq)
                .where((AppliedEvent.device == device) & AppliedEvent.seq.in_(chunk))
                .tuples()
            }
        fresh += [seqs[seq] for seq in wanted if seq not in seen]
    return fresh


def _recount(sku: str, qty: int, at: str, now: datetime) -> bool:
    level = StockLevel.get_or_none(StockLevel.sku == sku)
    if level is not None and level.count_at is not None and level.count_at >= at:
        return False  # an older count than the one already applied
    after = (
        Move.select(fn.COALESCE(fn.SUM(Move.delta), 0)).where((Move.sku == sku) & (Move.at > at))
    ).scalar()
    StockLevel.insert(
        sku=sku, on_hand=qty + int(after), count_at=at, updated_at=ts(now)
    ).on_conflict(
        conflict_target=[StockLevel.sku],
        update={
            StockLevel.on_hand: qty + int(after),
            StockLevel.count_at: at,
            StockLevel.updated_at: ts(now),
        },
    ).execute()
    return True


def advance_watermark(device: str) -> tuple[int, int | None]:
    """Move the device's contiguous watermark forward; returns (watermark, first seq
    applied beyond a gap, or None when there is no gap)."""
    state, _ = KioskState.get_or_create(device=device)
    mark = state.applied_to
    beyond = None
    for (seq,) in (
        AppliedEvent.select(AppliedEvent.seq)
        .where((AppliedEvent.device == device) & (AppliedEvent.seq > mark))
        .order_by(AppliedEvent.seq)
        .limit(10_000)
        .tuples()
    ):
        if seq == mark + 1:
            mark = seq
        else:
            beyond = seq
            break
    if mark != state.applied_to:
        KioskState.update(applied_to=mark).where(KioskState.device == device).execute()
    return mark, beyond
