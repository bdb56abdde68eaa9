# ruff: noqa: E501 - the refusals read best one to a line, word for word
"""The MQTT contract written out: topic names, payloads and every refusal word for word
(kiosk/mqtt/topics.py), and the controller store's bookkeeping with expected values by
hand (kiosk/mqtt/store.py). Written against the survivors of `./dev.sh mutate mqtt`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from kiosk.mqtt import topics
from kiosk.mqtt.topics import PayloadError, Topics

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TS = "2026-06-01T11:59:00.000000Z"


def event(**changes) -> dict:
    data = {"v": 1, "device": "till-01", "seq": 7, "id": "till-01:7", "ts": TS,
            "kind": "sale", "txn": "till-01-000007", "moves": [{"sku": "PEN", "delta": -2}]}  # fmt: skip
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


def raw(data) -> bytes:
    return json.dumps(data).encode()


def refused(parse, payload: bytes, *args, **kwargs) -> str:
    with pytest.raises(PayloadError) as info:
        parse(payload, *args, **kwargs)
    return str(info.value)


def test_topic_names_written_out():
    t = Topics("shop/store-042")
    assert t.kiosk_status("till-01") == "shop/store-042/kiosk/till-01/status"
    assert t.kiosk_stock("till-01") == "shop/store-042/kiosk/till-01/stock"
    assert t.kiosk_resync("till-01") == "shop/store-042/kiosk/till-01/resync"
    assert t.stock("PEN") == "shop/store-042/stock/PEN"
    assert t.controller_status == "shop/store-042/controller/status"
    assert t.all_kiosk_stock == "shop/store-042/kiosk/+/stock"
    assert t.all_kiosk_status == "shop/store-042/kiosk/+/status"
    assert t.all_stock == "shop/store-042/stock/#"
    assert t.device_of("shop/store-042/kiosk/till-01/stock") == "till-01"
    assert t.device_of("shop/store-042/kiosk/till-01") == "till-01"
    assert t.device_of("shop/store-043/kiosk/till-01/stock") is None
    assert t.device_of("shop/store-042/kiosk/-bad/stock") is None
    assert t.device_of("shop/store-042/stock/PEN") is None


def test_payloads_written_out(monkeypatch):
    monkeypatch.setattr(topics, "ts_now", lambda: TS)
    assert topics.encode({"v": 1, "a": [1, 2]}) == b'{"v":1,"a":[1,2]}'
    assert topics.kiosk_status("till-01", True, 3, "ok", 9) == {
        "v": 1, "device": "till-01", "online": True, "ts": TS, "outbox": 3, "printer": "ok",
        "seq": 9,
    }  # fmt: skip
    assert "seq" not in topics.kiosk_status("till-01", False, 0, "offline", None)
    assert topics.stock_level("PEN", -4) == {"v": 1, "sku": "PEN", "on_hand": -4, "ts": TS}
    assert topics.controller_status(False) == {"v": 1, "online": False, "ts": TS}
    assert topics.resync(12) == {"v": 1, "from_seq": 12}


def test_ts_now_is_utc_with_microseconds():
    text = topics.ts_now()
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - moment).total_seconds()) < 3600 and len(text) == 27


def test_a_stock_event_parsed_field_by_field():
    e = topics.parse_stock_event(raw(event(clock="unsynced")), "till-01", NOW)
    assert (e.device, e.seq, e.id, e.kind, e.txn, e.moves, e.clock) == (
        "till-01", 7, "till-01:7", "sale", "till-01-000007", (("PEN", -2),), "unsynced"
    )  # fmt: skip
    assert e.ts == datetime(2026, 6, 1, 11, 59, tzinfo=UTC)
    assert (e.counted, e.counted_at) == (None, None)
    count = topics.parse_stock_event(
        raw(event(kind="count", moves=[], counted={"PEN": 0, "INK": 1_000_000},
                  counted_at={"PEN": TS, "INK": "2026-06-01T12:05:00+00:00"})), None, NOW,
    )  # fmt: skip
    assert count.counted == {"PEN": 0, "INK": 1_000_000}
    assert count.counted_at == {"PEN": datetime(2026, 6, 1, 11, 59, tzinfo=UTC),
                                "INK": datetime(2026, 6, 1, 12, 5, tzinfo=UTC)}  # fmt: skip
    edge = topics.parse_stock_event(
        raw(event(seq=2**31 - 1, id=f"till-01:{2**31 - 1}", txn="x" * 64,
                  moves=[{"sku": "A", "delta": 1_000_000}, {"sku": "B", "delta": -1_000_000}])),
        "till-01", NOW,
    )  # fmt: skip
    assert edge.seq == 2**31 - 1 and edge.moves == (("A", 1_000_000), ("B", -1_000_000))
    first = topics.parse_stock_event(raw(event(seq=1, id="till-01:1")), "till-01", NOW)
    assert first.seq == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"[]", "not a JSON object"),
        (b"\xff", "not UTF-8: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
        (b"{", "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        (raw(event(v=2)), "unsupported schema version '2'"),
        (raw(event(v=True)), "unsupported schema version 'True'"),
        (raw(event(v=...)), "unsupported schema version 'None'"),
        (raw(event(v="x" * 30)), f"unsupported schema version {'x' * 20!r}"),
        (raw(event(device=7)), "device must be a device id"),
        (raw(event(device="-x")), "device must be a device id"),
        (raw(event(device="till-02", id="till-02:7")), "device 'till-02' published on 'till-01''s topic"),
        (raw(event(seq=0, id="till-01:0")), "seq 0 is out of range 1..2147483647"),
        (raw(event(seq=2**31, id=f"till-01:{2**31}")), "seq 2147483648 is out of range 1..2147483647"),
        (raw(event(seq="7")), "seq must be an integer"),
        (raw(event(seq=True)), "seq must be an integer"),
        (raw(event(id="till-01:8")), "id must be <device>:<seq>"),
        (raw(event(kind="theft")), "unknown kind 'theft'"),
        (raw(event(kind=["sale"])), "unknown kind \"['sale']\""),
        (raw(event(kind="k" * 30)), f"unknown kind {'k' * 20!r}"),
        (raw(event(txn="x" * 65)), "txn must be a receipt number of at most 64 characters"),
        (raw(event(txn=5)), "txn must be a receipt number of at most 64 characters"),
        (raw(event(clock="maybe")), "clock must be one of synced, unsynced"),
        (raw(event(clock=1)), "clock must be one of synced, unsynced"),
        (raw(event(moves={})), "moves must be a list"),
        (raw(event(moves=[{"sku": "A", "delta": 1}] * 1001)), "more than 1000 moves"),
        (raw(event(moves=[["PEN", 1]])), "each move must be {sku, delta}"),
        (raw(event(moves=[{"sku": "PEN"}])), "each move must be {sku, delta}"),
        (raw(event(moves=[{"sku": "PEN", "delta": 1, "x": 0}])), "each move must be {sku, delta}"),
        (raw(event(moves=[{"sku": "-PEN", "delta": 1}])), "bad sku '-PEN'"),
        (raw(event(moves=[{"sku": 5, "delta": 1}])), "bad sku '5'"),
        (raw(event(moves=[{"sku": "P" * 50, "delta": 1}])), f"bad sku {'P' * 40!r}"),
        (raw(event(moves=[{"sku": "PEN", "delta": 1.0}])), "delta of PEN must be an integer"),
        (raw(event(moves=[{"sku": "PEN", "delta": True}])), "delta of PEN must be an integer"),
        (raw(event(moves=[{"sku": "PEN", "delta": 1_000_001}])), "delta of PEN is over the 1000000 limit"),
        (raw(event(moves=[{"sku": "PEN", "delta": -1_000_001}])), "delta of PEN is over the 1000000 limit"),
        (raw(event(kind="count")), "a count needs counted and counted_at objects"),
        (raw(event(kind="count", counted={}, counted_at=[])), "a count needs counted and counted_at objects"),
        (raw(event(kind="count", counted={f"S{i}": 1 for i in range(1001)}, counted_at={})),
         "more than 1000 counted SKUs"),
        (raw(event(kind="count", counted={"PEN": -1}, counted_at={"PEN": TS})), "count of PEN must be 0..1000000"),
        (raw(event(kind="count", counted={"PEN": 1_000_001}, counted_at={"PEN": TS})), "count of PEN must be 0..1000000"),
        (raw(event(kind="count", counted={"PEN": False}, counted_at={"PEN": TS})), "count of PEN must be 0..1000000"),
        (raw(event(kind="count", counted={"PEN": "1"}, counted_at={"PEN": TS})), "count of PEN must be 0..1000000"),
        (raw(event(kind="count", counted={"-X": 1}, counted_at={"-X": TS})), "bad sku '-X'"),
        (raw(event(kind="count", counted={"PEN": 1}, counted_at={})), "counted_at of PEN must be an ISO-8601 UTC string"),
        (raw(event(ts=...)), "ts must be an ISO-8601 UTC string"),
        (raw(event(ts=12)), "ts must be an ISO-8601 UTC string"),
        (raw(event(ts="2026-06-01T11:59:00" + "0" * 30)), "ts must be an ISO-8601 UTC string"),
        (raw(event(ts="yesterday")), "ts 'yesterday' is not an ISO-8601 time"),
        (raw(event(ts="2026-06-01T11:59:00")), "ts must carry a time zone"),
        (raw(event(ts="0001-01-01T00:00:00+01:00")), "ts '0001-01-01T00:00:00+01:00' is out of range"),
        (raw(event(ts="2019-12-31T23:59:59.999999Z")), "ts '2019-12-31T23:59:59.999999Z' is before 2020-01-01"),
        (raw(event(ts="2026-06-01T12:05:00.000001Z")),
         "ts '2026-06-01T12:05:00.000001Z' is in the future (more than 300 s ahead of the controller's clock)"),
        (b'{"v": 1, "seq": ' + b"1" * 20 + b"}", "integer of 20 digits is out of range"),
        (b'{"v": 1, "seq": -' + b"1" * 20 + b"}", "integer of 21 digits is out of range"),
        (b'{"v": 1, "seq": NaN}', "NaN is not a number"),
        (b'{"v": 1, "seq": -Infinity}', "-Infinity is not a number"),
        (b'{"v": 1, "a": ' + b"[" * 7 + b"]" * 7 + b"}", "JSON nested deeper than 6"),
        (b"x" * 65_537, "payload of 65537 bytes is over the 65536 limit"),
    ],
)  # fmt: skip
def test_stock_event_refusals_word_for_word(payload, message):
    assert refused(topics.parse_stock_event, payload, "till-01", NOW) == message


def test_nesting_is_counted_outside_strings_only():
    deep_text = event(txn="t", moves=[], kind="adjust")
    deep_text["note"] = "[[[[[[[[{{{{"  # brackets inside a string do not nest
    assert topics.parse_stock_event(raw(deep_text), "till-01", NOW).kind == "adjust"
    six = b'{"v": 1, "a": ' + b"[" * 5 + b"]" * 5 + b"}"  # 6 levels: allowed, then refused
    assert refused(topics.parse_stock_event, six, "till-01", NOW) == "device must be a device id"
    assert refused(topics.parse_stock_event, bytearray(raw(event(v=2))), "till-01", NOW) == (
        "unsupported schema version '2'"
    )
    assert refused(topics.parse_stock_event, "text", "till-01", NOW) == "payload must be bytes"
    exactly = raw(event(pad="x" * (65_536 - len(raw(event(pad=""))))))
    assert len(exactly) == 65_536
    assert topics.parse_stock_event(exactly, "till-01", NOW).seq == 7


def test_time_limits_and_tolerance():
    five_minutes = "2026-06-01T12:05:00.000000Z"
    assert topics.parse_ts(five_minutes, "ts", NOW) == NOW + timedelta(minutes=5)
    assert topics.parse_ts("2020-01-01T00:00:00.000000Z") == datetime(2020, 1, 1, tzinfo=UTC)
    assert topics.parse_ts("2030-01-01T00:00:00Z") == datetime(2030, 1, 1, tzinfo=UTC)  # no now
    with pytest.raises(PayloadError) as info:
        topics.parse_ts("2026-06-01T12:00:11.000000Z", "at", NOW, future_tolerance_s=10)
    assert str(info.value) == (
        "at '2026-06-01T12:00:11.000000Z' is in the future (more than 10 s ahead of the "
        "controller's clock)"
    )
    assert topics.parse_ts("2026-06-01T14:00:00+02:00", "ts", NOW) == NOW
    e = topics.parse_stock_event(raw(event(ts="2026-06-01T12:09:00.000000Z")), None, NOW, 600)
    assert e.ts == NOW + timedelta(minutes=9)
    with pytest.raises(PayloadError, match="in the future"):
        topics.parse_stock_event(
            raw(event(kind="count", counted={"PEN": 1}, counted_at={"PEN": "2026-06-01T12:09:00Z"})),
            None, NOW, 300,
        )  # fmt: skip


def test_the_digest_tells_duplicates_from_conflicts():
    a = topics.parse_stock_event(raw(event()), "till-01", NOW)
    same = topics.parse_stock_event(raw(event()), "till-01", NOW)
    assert a.digest == same.digest and len(a.digest) == 64
    for change in (
        {"ts": "2026-06-01T11:59:00.000001Z"}, {"kind": "return"}, {"txn": "till-01-000008"},
        {"moves": [{"sku": "PEN", "delta": -3}]}, {"moves": [{"sku": "INK", "delta": -2}]},
        {"clock": "synced"},
    ):  # fmt: skip
        other = topics.parse_stock_event(raw(event(**change)), "till-01", NOW)
        assert other.digest != a.digest, change
    c1 = topics.parse_stock_event(
        raw(event(kind="count", counted={"PEN": 1}, counted_at={"PEN": TS})), None, NOW
    )
    c2 = topics.parse_stock_event(
        raw(event(kind="count", counted={"PEN": 2}, counted_at={"PEN": TS})), None, NOW
    )
    c3 = topics.parse_stock_event(raw(event(kind="count", counted={"PEN": 1},
                                            counted_at={"PEN": "2026-06-01T11:58:00Z"})), None, NOW)  # fmt: skip
    assert len({c1.digest, c2.digest, c3.digest}) == 3
    assert a.digest == __import__("hashlib").sha256(json.dumps(
        ["till-01", 7, TS, "sale", "till-01-000007", [["PEN", -2]], [], [], None],
        separators=(",", ":")).encode()).hexdigest()  # fmt: skip


def test_event_identity_of_a_refused_event():
    assert topics.event_identity(raw(event(kind="theft")), "till-01") == ("till-01", 7)
    assert topics.event_identity(raw(event(kind="theft")), "till-02") is None
    assert topics.event_identity(raw(event(id="till-01:8")), "till-01") is None
    assert topics.event_identity(raw(event(seq=0, id="till-01:0")), "till-01") is None
    assert topics.event_identity(b"junk", "till-01") is None


def status(**changes) -> bytes:
    data = {"v": 1, "device": "till-01", "online": True, "ts": TS, "outbox": 4, "printer": "ok"}
    data.update(changes)
    return raw({k: v for k, v in data.items() if v is not ...})


def test_a_kiosk_status_field_by_field():
    s = topics.parse_kiosk_status(status(seq=0), "till-01", NOW)
    assert (s.device, s.online, s.outbox, s.printer, s.seq) == ("till-01", True, 4, "ok", 0)
    assert s.ts == datetime(2026, 6, 1, 11, 59, tzinfo=UTC)
    plain = topics.parse_kiosk_status(status(printer=..., online=False, outbox=100_000_000))
    assert (plain.printer, plain.online, plain.seq, plain.outbox) == (
        "ok",
        False,
        None,
        100_000_000,
    )
    assert topics.parse_kiosk_status(status(printer="paper_out", seq=None)).printer == "paper_out"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (status(device="-x"), "device must be a device id"),
        (status(device="till-02"), "device does not match the topic"),
        (status(online="yes"), "online must be true or false"),
        (status(printer="jammed"), "unknown printer state 'jammed'"),
        (status(printer=3), "unknown printer state '3'"),
        (status(seq=-1), "seq -1 is out of range 0..2147483647"),
        (status(outbox=100_000_001), "outbox 100000001 is out of range 0..100000000"),
        (status(outbox=-1), "outbox -1 is out of range 0..100000000"),
        (status(ts="2027-01-01T00:00:00Z"),
         "ts '2027-01-01T00:00:00Z' is in the future (more than 300 s ahead of the controller's clock)"),
    ],
)  # fmt: skip
def test_kiosk_status_refusals_word_for_word(payload, message):
    assert refused(topics.parse_kiosk_status, payload, "till-01", NOW) == message


def test_resync_requests():
    assert topics.parse_resync(b'{"v": 1, "from_seq": 1}') == 1
    assert topics.parse_resync(b'{"v": 1, "from_seq": 2147483647}') == 2**31 - 1
    assert refused(topics.parse_resync, b'{"v": 1, "from_seq": 0}') == (
        "from_seq 0 is out of range 1..2147483647"
    )
    assert refused(topics.parse_resync, b'{"v": 1}') == "from_seq must be an integer"


# ---------------------------------------------------------------- the controller's apply path


def message(topic: str, data, mid: int = 1):
    import paho.mqtt.client as mqtt

    m = mqtt.MQTTMessage(mid, topic.encode())
    m.payload = data if isinstance(data, bytes) else json.dumps(data).encode()
    m.qos = 1
    return m


@pytest.fixture
def controller(tmp_path):
    """The real controller on its own store, with a real paho client that is not
    connected (acknowledgements and level publishes go nowhere)."""
    from kiosk.config import parse
    from kiosk.mqtt.controller import Controller

    config = parse('[device]\nid = "hq"\nstore = "store-042"\n')
    c = Controller(config, str(tmp_path / "controller.db"))
    yield c
    c.db.close()


def stock_event(device: str, seq: int, moves, kind="sale", **extra) -> dict:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"v": 1, "device": device, "seq": seq, "id": f"{device}:{seq}", "ts": now,
            "kind": kind, "txn": f"{device}-{seq}", "moves": [{"sku": s, "delta": d} for s, d in moves],
            **extra}  # fmt: skip


def test_the_apply_path_applies_skips_and_dead_letters(controller):
    from kiosk.mqtt import store

    root = "shop/store-042"
    first = stock_event("till-01", 1, [("PEN", -3), ("INK", -1)])
    changed = controller.apply_batch([
        message(f"{root}/kiosk/till-01/stock", first, 1),
        message(f"{root}/kiosk/till-02/stock", stock_event("till-02", 1, [("PEN", 5)], "receive"), 2),
        message(f"{root}/kiosk/till-01/stock", b"junk", 3),
        message(f"{root}/kiosk/till-01/stock", stock_event("till-01", 2, [("PEN", 1)], "theft"), 4),
        message(f"{root}/kiosk/till-02/stock", stock_event("till-01", 3, [("PEN", 1)]), 5),
    ])  # fmt: skip
    assert changed == {"PEN", "INK"}
    levels = {lv.sku: lv.on_hand for lv in store.StockLevel.select()}
    assert levels == {"PEN": 2, "INK": -1}  # -2 - 1 + 5
    assert (controller.applied, controller.dead, controller.duplicates) == (2, 3, 0)
    dead = {(d.topic[len(root) :], d.device, d.seq) for d in store.DeadLetter.select()}
    assert dead == {
        ("/kiosk/till-01/stock", None, None),  # junk: nothing can be read
        ("/kiosk/till-01/stock", "till-01", 2),  # an unknown kind, but its seq is known
        ("/kiosk/till-02/stock", None, None),  # till-01's event on till-02's topic
    }
    # The same event again: a duplicate, nothing changes; other content: a conflict.
    again = controller.apply_batch([message(f"{root}/kiosk/till-01/stock", first, 6)])
    assert again == set() and (controller.applied, controller.duplicates) == (2, 1)
    other = stock_event("till-01", 1, [("PEN", -9)])
    assert controller.apply_batch([message(f"{root}/kiosk/till-01/stock", other, 7)]) == set()
    conflict = store.DeadLetter.select().order_by(store.DeadLetter.id.desc()).get()
    assert conflict.error == "conflict: till-01:1 was applied before with other content"
    assert (conflict.device, conflict.seq) == (None, None)  # not a gap to skip: it was applied
    assert {lv.sku: lv.on_hand for lv in store.StockLevel.select()} == {"PEN": 2, "INK": -1}
    assert controller.dead == 4
    # A status is recorded; one from the wrong device is dead-lettered.
    status = {"v": 1, "device": "till-01", "online": True, "ts": stock_event("x", 1, [])["ts"],
              "outbox": 3, "printer": "paper_out", "seq": 2}  # fmt: skip
    controller.apply_batch([message(f"{root}/kiosk/till-01/status", status, 8)])
    state = store.KioskState.get_by_id("till-01")
    assert (state.online, state.outbox, state.printer, state.reported_seq) == (
        True,
        3,
        "paper_out",
        2,
    )
    controller.apply_batch([message(f"{root}/kiosk/till-02/status", status, 9)])
    assert controller.dead == 5
    # The watermark passes over seq 2, which was refused for good.
    assert store.advance_watermark("till-01") == (2, None)
    assert store.advance_watermark("till-02") == (1, None)


def test_the_same_dead_letter_counts_up(controller):
    from kiosk.mqtt import store

    for mid in (1, 2, 3):
        controller.apply_batch([message("shop/store-042/kiosk/till-01/stock", b"junk", mid)])
    (row,) = store.DeadLetter.select()
    assert row.times == 3 and controller.dead == 3


def test_counts_in_the_store_by_hand(tmp_path):
    from kiosk.mqtt import store

    store.open_store(str(tmp_path / "s.db"))
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def ev(device, seq, moves=(), kind="sale", minutes=0, **extra):
        data = event(device=device, seq=seq, id=f"{device}:{seq}", kind=kind, txn="t",
                     moves=[{"sku": s, "delta": d} for s, d in moves],
                     ts=(now - timedelta(minutes=10 - minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                     **extra)  # fmt: skip
        return topics.parse_stock_event(raw(data), device, now)

    assert store.apply_event(ev("a", 1, [("PEN", 10)], "receive", 0), now) == {"PEN"}
    assert store.apply_event(ev("a", 1, [("PEN", 10)], "receive", 0), now) is None  # again
    at = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    count = ev("b", 1, kind="count", minutes=5, counted={"PEN": 7}, counted_at={"PEN": at})
    sale_before = ev("a", 2, [("PEN", -1)], minutes=7)  # after the count (a later time)
    sale_earlier = ev("c", 1, [("PEN", -2)], minutes=9)  # after it too
    outcome = store.apply_events([count, sale_before, sale_earlier], now)
    assert [e.id for e in outcome.fresh] == ["b:1", "a:2", "c:1"]
    # 7 counted at minute 5; a's sale at minute 7 came after it; c's at minute 9 too.
    assert store.StockLevel.get_by_id("PEN").on_hand == 4
    late = ev("c", 2, [("PEN", -3)], minutes=2)  # made before the count (minute 2): absorbed
    assert store.apply_events([late], now).changed == set()
    assert store.StockLevel.get_by_id("PEN").on_hand == 4


def test_without_a_clock_given_this_machines_clock_limits_the_future():
    far = "2099-01-01T00:00:00.000000Z"
    with pytest.raises(PayloadError, match="is in the future"):
        topics.parse_kiosk_status(status(ts=far))
    with pytest.raises(PayloadError, match="is in the future"):
        topics.parse_stock_event(raw(event(ts=far)))
    assert topics.parse_kiosk_status(status(printer="offline"), "till-01", NOW).printer == "offline"
