"""The controller's bookkeeping, without a broker: exactly-once, counts, reorder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kiosk.config import ControllerConfig
from kiosk.mqtt import reorder, store, topics
from kiosk.mqtt.topics import StockEvent, parse_stock_event
from kiosk.testing.postgres import postgres_server
from tests.mqtt_env import wait_until

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def event(seq, kind, moves, at, device="till-01", counted=None, clock=None):
    return StockEvent(
        device=device,
        seq=seq,
        ts=at,
        kind=kind,
        txn=f"{device}-{seq:06d}",
        moves=tuple(moves),
        counted=counted,
        counted_at={sku: at for sku in counted} if counted else None,
        clock=clock,
    )


def levels():
    return {row.sku: row.on_hand for row in store.StockLevel.select()}


@pytest.fixture
def sqlite_store(tmp_path):
    db = store.open_store(str(tmp_path / "controller.db"))
    yield db
    db.close()


def apply_all(db, events):
    now = datetime.now(UTC)
    with db.atomic():
        return [store.apply_event(e, now) for e in events]


def test_each_event_applies_exactly_once(sqlite_store):
    e1 = event(1, "receive", [("PEN", 10)], T0)
    e2 = event(2, "sale", [("PEN", -2)], T0 + timedelta(minutes=1))
    results = apply_all(sqlite_store, [e2, e1, e2, e1])
    assert results == [{"PEN"}, {"PEN"}, None, None]
    assert levels() == {"PEN": 8}
    assert store.advance_watermark("till-01") == (2, None)


def test_gaps_are_found(sqlite_store):
    apply_all(sqlite_store, [event(s, "sale", [("PEN", -1)], T0) for s in (1, 2, 4, 5)])
    assert store.advance_watermark("till-01") == (2, 4)


def test_counts_reconcile_against_events_after_them_in_any_order(sqlite_store):
    receive = event(1, "receive", [("PEN", 50)], T0)
    before = event(2, "sale", [("PEN", -5)], T0 + timedelta(minutes=1), device="till-02")
    count = event(3, "count", [], T0 + timedelta(minutes=2), counted={"PEN": 40})
    after = event(4, "sale", [("PEN", -3)], T0 + timedelta(minutes=3), device="till-02")
    # The count arrives first, then a sale made after it, then older events late.
    apply_all(sqlite_store, [count, after, receive, before])
    assert levels() == {"PEN": 37}  # counted 40, minus the 3 sold after the count
    older = event(5, "count", [], T0 + timedelta(minutes=1, seconds=30), counted={"PEN": 99})
    apply_all(sqlite_store, [older])
    assert levels() == {"PEN": 37}  # an older count never overrides a newer one
    newer = event(6, "count", [], T0 + timedelta(minutes=4), counted={"PEN": 30})
    apply_all(sqlite_store, [newer])
    assert levels() == {"PEN": 30}


def test_reorder_suggestions_round_up_to_case_packs(sqlite_store):
    now = T0 + timedelta(days=1)
    store.SkuInfo.create(sku="WATER", name="Water", case_pack=6)
    store.SkuInfo.create(sku="PEN", name="Pen", case_pack=1)
    apply_all(
        sqlite_store,
        [
            event(1, "receive", [("WATER", 40), ("PEN", 100)], T0),
            event(2, "sale", [("WATER", -28)], T0 + timedelta(hours=1)),  # 28 in 28 days: 1/day
        ],
    )
    cfg = ControllerConfig(
        lead_time_days=Decimal(3), safety_days=Decimal(2), review_days=Decimal(7), history_days=28
    )
    rows = {r.sku: r for r in reorder.suggestions(cfg, now)}
    water = rows["WATER"]
    assert water.daily_demand == Decimal("1.00")
    assert water.reorder_point == 5  # 1/day x (3 + 2) days
    assert water.on_hand == 12 and not water.low and water.order_qty == 0
    apply_all(sqlite_store, [event(3, "sale", [("WATER", -8)], T0 + timedelta(hours=2))])
    water = {r.sku: r for r in reorder.suggestions(cfg, now)}["WATER"]
    assert water.on_hand == 4 and water.low
    # order up to 5 + 36/28 x 7 = 14, less 4 on hand = 10 -> two cases of 6
    assert water.order_qty == 12
    assert rows["PEN"].order_qty == 0 and not rows["PEN"].low


def test_unknown_skus_are_flagged_and_never_suggested(sqlite_store):
    now = T0 + timedelta(days=1)
    cfg = ControllerConfig()
    apply_all(
        sqlite_store,
        [
            event(1, "receive", [("PEN", 5), ("GHOST", 3)], T0),
            event(2, "count", [], T0, device="till-02", counted={"PHANTOM": 7}),
        ],
    )
    # No catalog loaded: nothing to check against, every SKU gets its line.
    assert reorder.unknown_skus() == []
    assert {r.sku for r in reorder.suggestions(cfg, now)} == {"PEN", "GHOST", "PHANTOM"}
    store.SkuInfo.create(sku="PEN", name="Pen", case_pack=1)
    unknown = reorder.unknown_skus()
    assert [(u.sku, u.on_hand, u.devices) for u in unknown] == [
        ("GHOST", 3, ("till-01",)),
        ("PHANTOM", 7, ("till-02",)),
    ]
    assert [r.sku for r in reorder.suggestions(cfg, now)] == ["PEN"]


def test_a_conflicting_repeat_is_reported_an_identical_one_is_not(sqlite_store):
    first = event(1, "sale", [("PEN", -1)], T0)
    same = event(1, "sale", [("PEN", -1)], T0)
    other = event(1, "sale", [("PEN", -50)], T0)
    now = datetime.now(UTC)
    with sqlite_store.atomic():
        outcome = store.apply_events([first, same, other], now)
    assert outcome.fresh == [first] and outcome.conflicts == [other]
    with sqlite_store.atomic():
        again = store.apply_events([same, other], now)
    assert again.fresh == [] and again.conflicts == [other]
    assert levels() == {"PEN": -1}


def test_one_devices_seq_orders_a_count_and_its_moves_when_its_clock_is_unsynced(sqlite_store):
    """A kiosk without a synchronised clock: its times say nothing; its seq does."""
    late, early = T0 + timedelta(days=2), T0 - timedelta(days=300)
    receive = event(1, "receive", [("PEN", 100)], late, clock="unsynced")
    count = event(3, "count", [], T0, counted={"PEN": 40}, clock="unsynced")
    # Dated long before the count, but made after it (seq 4): it counts after.
    after = event(4, "sale", [("PEN", -3)], early, clock="unsynced")
    # Dated after the count, but made before it (seq 2): the count saw it.
    before = event(2, "sale", [("PEN", -7)], late, clock="unsynced")
    for order in ([receive, count, after, before], [after, before, count, receive]):
        sqlite_store.drop_tables(store.MODELS)
        sqlite_store.create_tables(store.MODELS)
        apply_all(sqlite_store, order)
        assert levels() == {"PEN": 37}, order
    # Another device's sale is placed by its own time, as before.
    other = event(1, "sale", [("PEN", -1)], T0 + timedelta(minutes=1), device="till-02")
    apply_all(sqlite_store, [other])
    assert levels() == {"PEN": 36}
    # A later count of the same device (higher seq) wins though its time is older.
    recount = event(5, "count", [], early, counted={"PEN": 20}, clock="unsynced")
    apply_all(sqlite_store, [recount])
    assert levels() == {"PEN": 20 - 1}  # till-02's sale is dated after `early`


def test_a_sale_between_counting_and_posting_still_counts_after(sqlite_store):
    """Synchronised clock: a sale rung up on the counting device after the shelf was
    counted but before the count was posted (lower seq, later time) is not absorbed."""
    receive = event(1, "receive", [("PEN", 50)], T0, clock="synced")
    sale = event(2, "sale", [("PEN", -2)], T0 + timedelta(minutes=5), clock="synced")
    count = StockEvent(
        device="till-01", seq=3, ts=T0 + timedelta(minutes=10), kind="count",
        txn="till-01-000003", moves=(), counted={"PEN": 45},
        counted_at={"PEN": T0 + timedelta(minutes=1)}, clock="synced",
    )  # fmt: skip
    apply_all(sqlite_store, [count, sale, receive])
    assert levels() == {"PEN": 43}


def test_a_move_dated_ahead_takes_effect_when_it_arrived(sqlite_store):
    """Within the tolerance a kiosk's clock may run ahead: the move is placed no
    later than the controller's own now, so a count made meanwhile still sees it."""
    now = datetime.now(UTC)
    ahead = event(1, "sale", [("PEN", -1)], now + timedelta(seconds=200), device="till-02")
    with sqlite_store.atomic():
        store.apply_events([ahead], now)
    count = event(1, "count", [], now + timedelta(seconds=1), counted={"PEN": 10})
    with sqlite_store.atomic():
        store.apply_events([count], now + timedelta(seconds=1))
    assert levels() == {"PEN": 10}


def test_payload_parsing_round_trip():
    raw = topics.encode(
        {
            "v": 1, "device": "till-01", "seq": 3, "id": "till-01:3",
            "ts": "2026-11-01T12:00:00.000000Z", "kind": "count", "txn": "till-01-000003",
            "moves": [{"sku": "PEN", "delta": -1}], "counted": {"PEN": 7},
            "counted_at": {"PEN": "2026-11-01T11:59:00.000000Z"},
        }
    )  # fmt: skip
    parsed = parse_stock_event(raw, "till-01")
    assert parsed.counted == {"PEN": 7} and parsed.moves == (("PEN", -1),)
    assert parsed.counted_at["PEN"] == T0 - timedelta(minutes=1)
    with pytest.raises(topics.PayloadError, match="published on 'till-02'"):
        parse_stock_event(raw, "till-02")


@pytest.fixture
def postgres():
    """A real PostgreSQL server of our own on a free loopback port."""
    with postgres_server() as url:
        yield url


def test_the_same_bookkeeping_on_postgresql(postgres):
    db = store.open_store(postgres)
    try:
        assert type(db).__name__ == "PostgresqlDatabase"
        receive = event(1, "receive", [("PEN", 50)], T0)
        count = event(2, "count", [], T0 + timedelta(minutes=2), counted={"PEN": 40})
        after = event(3, "sale", [("PEN", -3)], T0 + timedelta(minutes=3))
        assert apply_all(db, [after, count, receive, after]) == [{"PEN"}, {"PEN"}, set(), None]
        assert levels() == {"PEN": 37}
        wait_until(lambda: store.advance_watermark("till-01") == (3, None), 5, what="watermark")
    finally:
        db.close()


def test_a_postgresql_store_made_by_the_previous_version_is_migrated(postgres):
    from playhouse.db_url import connect  # noqa: PLC0415

    old = connect(postgres)
    for statement in OLD_SCHEMA.format(pk="SERIAL PRIMARY KEY", bool="BOOLEAN").split(";"):
        if statement.strip():
            old.execute_sql(statement)
    old.close()
    db = store.open_store(postgres)
    try:
        check_migrated(db)
        # Schema 3: levels, moves and counts are 64-bit (INTEGER overflowed at 2^31-1).
        store.StockLevel.update(on_hand=store.StockLevel.on_hand + 2**33).execute()
        assert store.StockLevel.get_by_id("PEN").on_hand == 37 + 2**33
        with db.atomic():
            store.apply_events([event(9, "receive", [("PEN", 10**6)], T0)], datetime.now(UTC))
        assert store.StockLevel.get_by_id("PEN").on_hand == 37 + 2**33 + 10**6
    finally:
        db.close()


# The store's schema as the previous version (schema 0, no version kept) created it.
OLD_SCHEMA = """
CREATE TABLE "applied_event" ("id" {pk}, "device" VARCHAR(32) NOT NULL, "seq" INTEGER NOT NULL,
  "kind" VARCHAR(10) NOT NULL, "txn" VARCHAR(64) NOT NULL, "ts" VARCHAR(32) NOT NULL,
  "applied_at" VARCHAR(32) NOT NULL);
CREATE UNIQUE INDEX "applied_event_device_seq" ON "applied_event" ("device", "seq");
CREATE TABLE "count_record" ("id" {pk}, "device" VARCHAR(32) NOT NULL, "seq" INTEGER NOT NULL,
  "sku" VARCHAR(32) NOT NULL, "qty" INTEGER NOT NULL, "at" VARCHAR(32) NOT NULL);
CREATE TABLE "dead_letter" ("id" {pk}, "topic" VARCHAR(200) NOT NULL, "payload" TEXT NOT NULL,
  "error" TEXT NOT NULL, "received_at" VARCHAR(32) NOT NULL);
CREATE TABLE "kiosk_state" ("device" VARCHAR(32) NOT NULL PRIMARY KEY, "online" {bool} NOT NULL,
  "last_seen" VARCHAR(32), "outbox" INTEGER NOT NULL, "printer" VARCHAR(16) NOT NULL,
  "applied_to" INTEGER NOT NULL, "reported_seq" INTEGER);
CREATE TABLE "move" ("id" {pk}, "device" VARCHAR(32) NOT NULL, "seq" INTEGER NOT NULL,
  "sku" VARCHAR(32) NOT NULL, "kind" VARCHAR(10) NOT NULL, "delta" INTEGER NOT NULL,
  "at" VARCHAR(32) NOT NULL);
CREATE INDEX "move_sku_at" ON "move" ("sku", "at");
CREATE TABLE "sku_info" ("sku" VARCHAR(32) NOT NULL PRIMARY KEY, "name" VARCHAR(120) NOT NULL,
  "case_pack" INTEGER NOT NULL);
CREATE TABLE "stock_level" ("sku" VARCHAR(32) NOT NULL PRIMARY KEY, "on_hand" INTEGER NOT NULL,
  "count_at" VARCHAR(32), "updated_at" VARCHAR(32) NOT NULL);
INSERT INTO "applied_event" ("device", "seq", "kind", "txn", "ts", "applied_at") VALUES
  ('till-01', 1, 'receive', 'till-01-000001', '2026-11-01T12:00:00.000000Z', 'x'),
  ('till-01', 2, 'count', 'till-01-000002', '2026-11-01T12:02:00.000000Z', 'x');
INSERT INTO "move" ("device", "seq", "sku", "kind", "delta", "at") VALUES
  ('till-01', 1, 'PEN', 'receive', 50, '2026-11-01T12:00:00.000000Z');
INSERT INTO "count_record" ("device", "seq", "sku", "qty", "at") VALUES
  ('till-01', 2, 'PEN', 40, '2026-11-01T12:02:00.000000Z');
INSERT INTO "stock_level" ("sku", "on_hand", "count_at", "updated_at") VALUES
  ('PEN', 40, '2026-11-01T12:02:00.000000Z', 'x');
INSERT INTO "dead_letter" ("topic", "payload", "error", "received_at") VALUES
  ('shop/store-042/kiosk/till-01/stock', 'not json', 'not JSON', '2026-11-01T12:05:00.000000Z');
"""


def check_migrated(db):
    """A store the previous version made, opened by this one: data kept, new columns
    filled where they can be, and the bookkeeping goes on with the new rules."""
    assert store.schema_version(db) == store.SCHEMA_VERSION
    level = store.StockLevel.get_by_id("PEN")
    assert (level.on_hand, level.count_device, level.count_seq) == (40, "till-01", 2)
    letter = store.DeadLetter.get()
    assert (letter.times, letter.last_at, letter.seq) == (1, letter.received_at, None)
    # An old event (no digest) repeated is a duplicate, not a conflict.
    again = event(1, "receive", [("PEN", 50)], T0)
    with db.atomic():
        assert store.apply_events([again], datetime.now(UTC)) == (set(), [], [])
    after = event(3, "sale", [("PEN", -3)], T0 - timedelta(days=1), clock="unsynced")
    apply_all(db, [after])
    assert levels() == {"PEN": 37}  # after the count by seq, though dated before it
    now = datetime.now(UTC)
    with db.atomic():
        store.dead_letter("shop/store-042/kiosk/till-01/stock", b"not json", "not JSON", now)
        store.dead_letter("shop/store-042/kiosk/till-01/stock", b"not json", "not JSON", now)
    assert [r.times for r in store.DeadLetter.select().order_by(store.DeadLetter.id)] == [1, 2]


def test_a_store_made_by_the_previous_version_is_migrated(tmp_path):
    import sqlite3  # noqa: PLC0415

    path = tmp_path / "controller.db"
    with sqlite3.connect(path) as old:
        old.executescript(OLD_SCHEMA.format(pk="INTEGER NOT NULL PRIMARY KEY", bool="INTEGER"))
    db = store.open_store(str(path))
    try:
        check_migrated(db)
    finally:
        db.close()
    db = store.open_store(str(path))  # opening again changes nothing
    try:
        assert store.schema_version(db) == store.SCHEMA_VERSION
        assert levels() == {"PEN": 37}
    finally:
        db.close()


def _store_at_version_1(database: str, monkeypatch) -> None:
    """A store as the previous version (schema 1, before the item master) made it."""
    with monkeypatch.context() as patch:
        patch.setattr(store, "SCHEMA_VERSION", 1)
        patch.setattr(store, "MODELS", store.MODELS[:7])
        db = store.open_store(database)
        with db.atomic():
            store.KioskState.insert(device="till-01", applied_to=7, printer="ok").execute()
            store.SkuInfo.create(sku="PEN", name="Pen", case_pack=10)
        assert store.schema_version(db) == 1
        assert "master_item" not in db.get_tables()
        db.close()


def _check_item_master_migrated(db) -> None:
    from kiosk.config import parse  # noqa: PLC0415
    from kiosk.mqtt import master  # noqa: PLC0415
    from tests.conftest import CATALOG  # noqa: PLC0415

    assert store.schema_version(db) == store.SCHEMA_VERSION == 5
    state = store.KioskState.get_by_id("till-01")
    assert (state.applied_to, state.catalog_version, state.catalog_error) == (7, None, None)
    rules = master.rules(parse(""))
    with db.atomic():
        made = master.import_rows(master.read_text(rules, CATALOG, "c.csv"), "S1", T0)
    assert made.version == 1 and master.current()[2] == 12
    status = topics.KioskStatus("till-01", True, T0, 0, "ok", 7, catalog=1, catalog_error=None)
    with db.atomic():
        store.record_status(status)
    assert store.KioskState.get_by_id("till-01").catalog_version == 1


def test_a_sqlite_store_of_version_1_gets_the_item_master(tmp_path, monkeypatch):
    path = str(tmp_path / "controller.db")
    _store_at_version_1(path, monkeypatch)
    db = store.open_store(path)
    try:
        _check_item_master_migrated(db)
    finally:
        db.close()


def test_a_postgresql_store_of_version_1_gets_the_item_master(postgres, monkeypatch):
    _store_at_version_1(postgres, monkeypatch)
    db = store.open_store(postgres)
    try:
        _check_item_master_migrated(db)
    finally:
        db.close()


def test_reorder_uses_the_masters_lead_time_safety_stock_and_case_pack(sqlite_store):
    from kiosk.config import parse  # noqa: PLC0415
    from kiosk.mqtt import master  # noqa: PLC0415

    rules = master.rules(parse(""))
    text = (
        "sku,name,price,tax,case_pack,lead_time_days,safety_stock,reorder_point\n"
        "PEN,Pen,1.49,A,12,5,7,\nINK,Ink,3.00,A,6,,,40\n"
    )
    with sqlite_store.atomic():
        master.import_rows(master.read_text(rules, text, "m.csv"), None, T0)
    now = datetime.now(UTC)
    # 28 days of 2 pens a day: demand 2/day; point = 2 x 5 + 7 = 17 -> 24 (whole cases of 12)
    events = [event(1, "receive", [("PEN", 100), ("INK", 30)], now - timedelta(days=27))]
    events += [event(2, "sale", [("PEN", -56)], now - timedelta(days=1))]
    apply_all(sqlite_store, events)
    cfg = ControllerConfig(history_days=28, review_days=Decimal(7))
    rows = {r.sku: r for r in reorder.suggestions(cfg, now)}
    assert (rows["PEN"].reorder_point, rows["PEN"].on_hand, rows["PEN"].case_pack) == (24, 44, 12)
    assert not rows["PEN"].low
    assert (rows["INK"].reorder_point, rows["INK"].low) == (40, True)  # set in the master
    assert rows["INK"].order_qty == 12  # up to 40 + 0 x 7, from 30: 10 -> 12 (cases of 6)
