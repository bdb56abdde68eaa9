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


# ---------------------------------------------------------------- the item master's messages

HEX = "0123456789abcdef" * 4
SHA = "f" * 64


def test_catalog_topics_and_payloads_written_out(monkeypatch):
    monkeypatch.setattr(topics, "ts_now", lambda: TS)
    t = Topics("shop/store-042")
    assert t.catalog_current == "shop/store-042/catalog/current"
    assert t.catalog_get("till-01") == "shop/store-042/kiosk/till-01/catalog/get"
    assert t.catalog_data("till-01") == "shop/store-042/kiosk/till-01/catalog/data"
    assert t.all_catalog_get == "shop/store-042/kiosk/+/catalog/get"
    assert t.catalog_acl() == [
        "pattern write shop/store-042/kiosk/%u/catalog/get",
        "pattern read shop/store-042/kiosk/%u/catalog/data",
        "pattern read shop/store-042/catalog/current",
    ]
    assert t.device_of("shop/store-042/kiosk/till-01/catalog/get") == "till-01"
    assert t.device_of("shop/store-042/kiosk/") is None
    assert t.device_of("shop/store-042/kiosk/" + "a" * 33 + "/stock") is None
    assert t.device_of("shop/store-042/kiosk/" + "a" * 32 + "/stock") == "a" * 32
    assert t.device_of("xshop/store-042/kiosk/till-01/stock") is None
    assert topics.catalog_current(7, HEX, 12) == {
        "v": 1, "version": 7, "checksum": HEX, "items": 12, "ts": TS,
    }  # fmt: skip
    assert topics.catalog_get("till-01", 6) == {
        "v": 1,
        "device": "till-01",
        "have": 6,
        "full": False,
    }
    assert topics.catalog_get("till-01", 0, True)["full"] is True
    assert topics.catalog_chunk({"xfer": "ab"}, b"BODY") == b'{"v":1,"xfer":"ab"}\nBODY'


def test_catalog_current_parsed_and_refused():
    got = topics.parse_catalog_current(raw({"v": 1, "version": 7, "checksum": HEX, "items": 12}))
    assert got == topics.CatalogCurrent(7, HEX, 12)
    edge = raw({"v": 1, "version": 2**31 - 1, "checksum": HEX, "items": 1_000_000})
    assert topics.parse_catalog_current(edge) == topics.CatalogCurrent(2**31 - 1, HEX, 1_000_000)
    zero = raw({"v": 1, "version": 0, "checksum": "0" * 64, "items": 0})
    assert topics.parse_catalog_current(zero) == topics.CatalogCurrent(0, "0" * 64, 0)
    for data, message in [
        ({"version": -1, "checksum": HEX, "items": 0}, "version -1 is out of range 0..2147483647"),
        (
            {"version": 2**31, "checksum": HEX, "items": 0},
            "version 2147483648 is out of range 0..2147483647",
        ),
        ({"checksum": HEX, "items": 0}, "version must be an integer"),
        (
            {"version": 1, "checksum": HEX.upper(), "items": 0},
            "checksum must be 64 lower-case hex digits",
        ),
        (
            {"version": 1, "checksum": HEX[:63], "items": 0},
            "checksum must be 64 lower-case hex digits",
        ),
        (
            {"version": 1, "checksum": HEX + "0", "items": 0},
            "checksum must be 64 lower-case hex digits",
        ),
        ({"version": 1, "checksum": 5, "items": 0}, "checksum must be 64 lower-case hex digits"),
        ({"version": 1, "items": 0}, "checksum must be 64 lower-case hex digits"),
        (
            {"version": 1, "checksum": HEX, "items": 1_000_001},
            "items 1000001 is out of range 0..1000000",
        ),
        ({"version": 1, "checksum": HEX, "items": -1}, "items -1 is out of range 0..1000000"),
        ({"version": 1, "checksum": HEX}, "items must be an integer"),
    ]:
        assert refused(topics.parse_catalog_current, raw({"v": 1, **data})) == message, data
    assert refused(topics.parse_catalog_current, b"[]") == "not a JSON object"


def test_catalog_requests_parsed_and_refused():
    got = topics.parse_catalog_get(raw(topics.catalog_get("till-01", 6)), "till-01")
    assert got == topics.CatalogGet("till-01", 6, False)
    full = topics.parse_catalog_get(
        raw({"v": 1, "device": "till-01", "have": 0, "full": True}), "till-01"
    )
    assert full == topics.CatalogGet("till-01", 0, True)
    plain = topics.parse_catalog_get(
        raw({"v": 1, "device": "till-01", "have": 2**31 - 1}), "till-01"
    )
    assert plain == topics.CatalogGet("till-01", 2**31 - 1, False)
    for data, message in [
        ({"device": "till-02", "have": 1}, "device does not match the topic"),
        ({"have": 1}, "device does not match the topic"),
        ({"device": "till-01", "have": 1, "full": 1}, "full must be true or false"),
        ({"device": "till-01", "have": 1, "full": None}, "full must be true or false"),
        ({"device": "till-01", "have": -1}, "have -1 is out of range 0..2147483647"),
        ({"device": "till-01", "have": 2**31}, "have 2147483648 is out of range 0..2147483647"),
        ({"device": "till-01"}, "have must be an integer"),
    ]:
        assert refused(topics.parse_catalog_get, raw({"v": 1, **data}), "till-01") == message, data
    assert refused(topics.parse_catalog_get, b"junk", "till-01").startswith("not JSON: ")


def chunk_header(**changes) -> dict:
    data = {"xfer": "0123456789abcdef", "kind": "delta", "base": 4, "version": 5,
            "checksum": HEX, "items": 12, "i": 1, "n": 3, "size": 100_000, "sha256": SHA}  # fmt: skip
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


def test_a_catalog_chunk_parsed_field_by_field():
    got = topics.parse_catalog_chunk(topics.catalog_chunk(chunk_header(), b"\x00\nbody\n"))
    assert got == topics.CatalogChunk(
        xfer="0123456789abcdef", kind="delta", base=4, version=5, checksum=HEX, items=12,
        index=1, count=3, size=100_000, digest=SHA, body=b"\x00\nbody\n",
    )  # fmt: skip
    full = topics.parse_catalog_chunk(
        bytearray(topics.catalog_chunk(chunk_header(kind="full", base=0, i=0, n=1, size=0), b""))
    )
    assert (full.kind, full.base, full.index, full.count, full.size, full.body) == (
        "full", 0, 0, 1, 0, b""
    )  # fmt: skip
    top = chunk_header(version=2**31 - 1, base=2**31 - 2, n=8192, i=8191, size=8192 * 49152,
                       items=1_000_000)  # fmt: skip
    big = topics.parse_catalog_chunk(topics.catalog_chunk(top, b"x" * 49152))
    assert (big.version, big.base, big.count, big.index, big.size, big.items, len(big.body)) == (
        2**31 - 1, 2**31 - 2, 8192, 8191, 402_653_184, 1_000_000, 49152
    )  # fmt: skip
    first = topics.parse_catalog_chunk(topics.catalog_chunk(chunk_header(version=1, base=0), b""))
    assert (first.version, first.base, first.kind) == (1, 0, "delta")


@pytest.mark.parametrize(
    ("header", "body", "message"),
    [
        (chunk_header(xfer="0123456789ABCDEF"), b"", "xfer must be 16 hex digits"),
        (chunk_header(xfer="0123456789abcde"), b"", "xfer must be 16 hex digits"),
        (chunk_header(xfer=123), b"", "xfer must be 16 hex digits"),
        (chunk_header(xfer=...), b"", "xfer must be 16 hex digits"),
        (chunk_header(kind="all"), b"", "kind must be one of delta, full"),
        (chunk_header(kind=...), b"", "kind must be one of delta, full"),
        (chunk_header(n=0, i=0), b"", "n 0 is out of range 1..8192"),
        (chunk_header(n=8193), b"", "n 8193 is out of range 1..8192"),
        (chunk_header(n=...), b"", "n must be an integer"),
        (chunk_header(i=3), b"", "i 3 is out of range 0..2"),
        (chunk_header(i=-1), b"", "i -1 is out of range 0..2"),
        (chunk_header(i=...), b"", "i must be an integer"),
        (chunk_header(size=-1), b"", "size -1 is out of range 0..402653184"),
        (chunk_header(size=402_653_185), b"", "size 402653185 is out of range 0..402653184"),
        (chunk_header(size=...), b"", "size must be an integer"),
        (chunk_header(), b"x" * 49153, "chunk of 49153 bytes is over the 49152 limit"),
        (chunk_header(version=0, base=0), b"", "version 0 is out of range 1..2147483647"),
        (chunk_header(version=2**31), b"", "version 2147483648 is out of range 1..2147483647"),
        (chunk_header(version=...), b"", "version must be an integer"),
        (chunk_header(base=5), b"", "base 5 is out of range 0..4"),
        (chunk_header(base=-1), b"", "base -1 is out of range 0..4"),
        (chunk_header(base=...), b"", "base must be an integer"),
        (chunk_header(kind="full", base=3), b"", "a full transfer has base 0"),
        (chunk_header(checksum=HEX.upper()), b"", "checksum must be 64 lower-case hex digits"),
        (chunk_header(checksum=...), b"", "checksum must be 64 lower-case hex digits"),
        (chunk_header(items=1_000_001), b"", "items 1000001 is out of range 0..1000000"),
        (chunk_header(items=-1), b"", "items -1 is out of range 0..1000000"),
        (chunk_header(items=...), b"", "items must be an integer"),
        (chunk_header(sha256="f" * 63), b"", "sha256 must be 64 lower-case hex digits"),
        (chunk_header(sha256=...), b"", "sha256 must be 64 lower-case hex digits"),
        (chunk_header(v=2), b"", "unsupported schema version '2'"),
    ],
)  # fmt: skip
def test_catalog_chunk_refusals_word_for_word(header, body, message):
    payload = json.dumps(header).encode() if "v" in header else topics.catalog_chunk(header, b"")
    assert (
        refused(topics.parse_catalog_chunk, payload + (b"\n" if "v" in header else b"") + body)
        == message
    )


def test_catalog_chunk_framing_refused_word_for_word():
    assert refused(topics.parse_catalog_chunk, "text") == "payload must be bytes"
    assert refused(topics.parse_catalog_chunk, topics.encode(chunk_header(v=1))) == (
        "a catalog chunk needs a header line"
    )
    assert refused(topics.parse_catalog_chunk, b"\nbody") == (
        "not JSON: Expecting value: line 1 column 1 (char 0)"
    )
    over = topics.catalog_chunk(chunk_header(), b"x" * (65_536 - 247))
    assert len(over) > 65_536
    assert refused(topics.parse_catalog_chunk, over) == (
        f"payload of {len(over)} bytes is over the 65536 limit"
    )
    exactly = topics.catalog_chunk(chunk_header(), b"")
    exactly += b"x" * (65_536 - len(exactly))
    assert refused(topics.parse_catalog_chunk, exactly) == (
        f"chunk of {65_536 - len(topics.catalog_chunk(chunk_header(), b''))} bytes is over the 49152 limit"
    )


# ---------------------------------------------------------------- the apply path when parts fail

ROOT = "shop/store-042"


@pytest.fixture
def spied(controller, monkeypatch):
    """The controller with its real (unconnected) paho client's acknowledgements and
    publishes recorded on their way through."""
    acks, published = [], []
    real_ack, real_publish = controller.client.ack, controller.client.publish

    def ack(mid, qos):
        acks.append((mid, qos))
        return real_ack(mid, qos)

    def publish(topic, payload=None, qos=0, retain=False, *args, **kwargs):
        published.append((topic, payload, qos, retain))
        return real_publish(topic, payload, qos, retain, *args, **kwargs)

    monkeypatch.setattr(controller.client, "ack", ack)
    monkeypatch.setattr(controller.client, "publish", publish)
    controller.acks, controller.published = acks, published
    return controller


def sql(controller, *statements):
    for statement in statements:
        controller.db.execute_sql(statement)


def letters():
    from kiosk.mqtt import store

    return [(d.topic, d.error, d.device, d.seq, d.times)
            for d in store.DeadLetter.select().order_by(store.DeadLetter.id)]  # fmt: skip


def levels():
    from kiosk.mqtt import store

    return {lv.sku: lv.on_hand for lv in store.StockLevel.select()}


def test_a_batch_whose_commit_fails_is_applied_message_by_message(spied, caplog):
    """The commit itself fails (a deferred foreign key the test adds: a POISON level
    points nowhere): the batch is applied again one message at a time; the good one
    commits, the bad one is dead-lettered in a transaction of its own."""
    sql(
        spied,
        "PRAGMA foreign_keys = ON",
        "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
        "CREATE TABLE child (id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TRIGGER poison AFTER INSERT ON stock_level WHEN NEW.sku = 'POISON' "
        "BEGIN INSERT INTO child (id) VALUES (42); END",
    )
    caplog.set_level("INFO", logger="kiosk.mqtt.controller")
    good = message(f"{ROOT}/kiosk/till-01/stock", stock_event("till-01", 1, [("PEN", -2)]), 11)
    bad = message(f"{ROOT}/kiosk/till-02/stock", stock_event("till-02", 1, [("POISON", 1)]), 12)
    assert spied.apply_batch([good, bad]) == {"PEN"}
    assert levels() == {"PEN": -2}
    assert letters() == [
        (f"{ROOT}/kiosk/till-02/stock", "could not apply (see the controller's log)", "till-02",
         1, 1)
    ]  # fmt: skip
    # (applied counts the events of the failed commits too: not asserted, see M's report)
    assert spied.dead == 1
    assert sorted(spied.acks) == [(11, 1), (12, 1)]
    assert [(t, json.loads(p)["on_hand"], q, r) for t, p, q, r in spied.published] == [
        (f"{ROOT}/stock/PEN", -2, 1, True)
    ]
    messages = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert messages == [
        "a batch of 2 failed; applying it message by message",
        f"could not apply a message on {ROOT}/kiosk/till-02/stock",
    ]
    # The same poison alone: straight to the last resort, acknowledged, nothing applied
    caplog.clear()
    again = message(f"{ROOT}/kiosk/till-02/stock", stock_event("till-02", 2, [("POISON", 1)]), 13)
    assert spied.apply_batch([again]) == set()
    assert spied.acks[-1] == (13, 1) and levels() == {"PEN": -2}
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        f"could not apply a message on {ROOT}/kiosk/till-02/stock"
    ]
    assert len(letters()) == 2 and spied.dead == 2


def test_a_store_that_is_locked_loses_the_message_to_the_log_only(spied, caplog, tmp_path):
    """Another process holds the store's write lock: the batch cannot start and neither
    can its last resort; the message is logged as lost and acknowledged (the kiosk's gap
    check asks for a lost stock event again)."""
    import sqlite3

    sql(spied, "PRAGMA busy_timeout = 0")
    other = sqlite3.connect(tmp_path / "controller.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        m = message(f"{ROOT}/kiosk/till-01/stock", stock_event("till-01", 1, [("PEN", 1)]), 21)
        assert spied.apply_batch([m]) == set()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert spied.acks == [(21, 1)]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        f"could not apply a message on {ROOT}/kiosk/till-01/stock",
        f"lost a message on {ROOT}/kiosk/till-01/stock",
    ]
    assert (letters(), levels(), spied.applied, spied.dead) == ([], {}, 0, 0)


def test_one_event_that_fails_inside_the_batch_is_dead_lettered_alone(spied):
    """An event the store refuses (a trigger the test adds) fails the batch's savepoint:
    the events are applied one by one, conflicts and duplicates still found."""
    sql(spied, "CREATE TRIGGER poison BEFORE INSERT ON move WHEN NEW.sku = 'POISON' "
               "BEGIN SELECT RAISE(ABORT, 'poisoned'); END")  # fmt: skip
    first = stock_event("till-01", 1, [("PEN", -1)])
    assert spied.apply_batch([message(f"{ROOT}/kiosk/till-01/stock", first, 1)]) == {"PEN"}
    batch = [
        message(f"{ROOT}/kiosk/till-01/stock", first, 2),  # a duplicate
        message(f"{ROOT}/kiosk/till-01/stock", {**first, "txn": "other"}, 3),  # a conflict
        message(f"{ROOT}/kiosk/till-01/stock", stock_event("till-01", 2, [("POISON", 1)]), 4),
        message(f"{ROOT}/kiosk/till-01/stock", stock_event("till-01", 3, [("INK", 4)]), 5),
        message(f"{ROOT}/kiosk/till-02/stock", stock_event("till-02", 1, [("PEN", 3)]), 6),
    ]
    assert spied.apply_batch(batch) == {"INK", "PEN"}
    assert levels() == {"PEN": 2, "INK": 4}
    # (the poisoned event is counted among the duplicates: not asserted here, see M's report)
    assert (spied.applied, spied.dead) == (3, 2)
    stock = f"{ROOT}/kiosk/till-01/stock"
    assert letters() == [
        (stock, "could not apply: IntegrityError('poisoned')", "till-01", 2, 1),
        (stock, "conflict: till-01:1 was applied before with other content", None, None, 1),
    ]
    assert sorted(spied.acks) == [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1)]
    assert spied._gap_since == {"till-01": 0.0, "till-02": 0.0}
    # duplicates add up over batches; a conflict is not one
    before = spied.duplicates
    conflict = message(stock, {**first, "txn": "another"}, 9)
    spied.apply_batch([message(stock, first, 7), message(stock, first, 8), conflict])
    assert (spied.applied, spied.duplicates - before, spied.dead) == (3, 2, 3)
    spied.apply_batch([message(stock, first, 10)])
    assert spied.duplicates - before == 3


def test_a_status_that_cannot_be_recorded_is_dead_lettered(spied):
    sql(spied, "CREATE TRIGGER nostatus BEFORE INSERT ON kiosk_state "
               "BEGIN SELECT RAISE(ABORT, 'no room'); END")  # fmt: skip
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    status = {"v": 1, "device": "till-01", "online": True, "ts": now, "outbox": 0, "printer": "ok"}
    event = stock_event("till-01", 1, [("PEN", 5)], "receive")
    assert spied.apply_batch([
        message(f"{ROOT}/kiosk/till-01/status", status, 1),
        message(f"{ROOT}/kiosk/till-01/stock", event, 2),
    ]) == {"PEN"}  # fmt: skip
    assert letters() == [
        (f"{ROOT}/kiosk/till-01/status", "could not record the status: IntegrityError('no room')",
         None, None, 1)
    ]  # fmt: skip
    assert levels() == {"PEN": 5} and spied.dead == 1


def test_a_status_is_recorded_and_its_kiosk_watched(spied):
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    status = {"v": 1, "device": "till-03", "online": False, "ts": now, "outbox": 2,
              "printer": "offline", "seq": 9}  # fmt: skip
    assert spied.apply_batch([message(f"{ROOT}/kiosk/till-03/status", status, 5)]) == set()
    assert spied._gap_since == {"till-03": 0.0}
    assert spied.acks == [(5, 1)] and letters() == []


def test_topics_the_controller_does_not_serve_are_dead_lettered_word_for_word(spied, caplog):
    status = {"v": 1, "device": "till-01", "online": True, "ts": TS, "outbox": 0,
              "printer": "jammed", "seq": 5, "id": "till-01:5"}  # fmt: skip
    hostile = {"v": 1, "seq": 5, "id": "None:5"}
    bad_topic = mqtt_message(b"shop/store-042/kiosk/till-01/\xff", b"{}", 4)
    spied.apply_batch([
        message(f"{ROOT}/stock/PEN", hostile, 1),
        message(f"{ROOT}/kiosk/till-01/other", hostile, 2),
        message(f"{ROOT}/kiosk/till-01/status", status, 3),
        bad_topic,
    ])  # fmt: skip
    got = letters()
    assert got[:3] == [
        (f"{ROOT}/stock/PEN", "not a kiosk topic", None, None, 1),
        (f"{ROOT}/kiosk/till-01/other", "unexpected topic", None, None, 1),
        # a refused status is no stock event: its seq is not passed over by the gap check
        (f"{ROOT}/kiosk/till-01/status", "unknown printer state 'jammed'", None, None, 1),
    ]
    topic, error, device, seq, times = got[3]
    assert (topic, device, seq, times) == (f"{ROOT}/kiosk/till-01/\ufffd", None, None, 1)
    assert error.startswith("internal error: UnicodeDecodeError('utf-8', ")
    assert spied.dead == 4 and sorted(spied.acks) == [(1, 1), (2, 1), (3, 1), (4, 1)]
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        f"could not parse a message on {ROOT}/kiosk/till-01/\ufffd"
    ]


def test_a_dead_letter_that_cannot_be_kept_is_logged(spied, caplog):
    sql(spied, "CREATE TRIGGER noletters BEFORE INSERT ON dead_letter "
               "BEGIN SELECT RAISE(ABORT, 'full'); END")  # fmt: skip
    assert spied.apply_batch([message(f"{ROOT}/kiosk/till-01/stock", b"junk", 3)]) == set()
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "could not keep the dead letter"
    ]
    assert spied.dead == 1 and spied.acks == [(3, 1)] and letters() == []


def mqtt_message(topic: bytes, payload: bytes, mid: int):
    import paho.mqtt.client as mqtt

    m = mqtt.MQTTMessage(mid, topic)
    m.payload, m.qos = payload, 1
    return m


def test_times_are_checked_against_the_batchs_clock_and_the_configured_tolerance(tmp_path):
    from kiosk.config import parse
    from kiosk.mqtt import store
    from kiosk.mqtt.controller import Controller

    config = parse(
        '[device]\nid = "hq"\nstore = "store-042"\n[controller]\nfuture_tolerance_s = 10\n'
    )
    c = Controller(config, str(tmp_path / "c.db"))
    try:
        then = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        ts = lambda s: (then + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
        events = [
            {**stock_event("till-01", 1, [("PEN", 1)]), "ts": ts(5)},  # within 10 s
            {**stock_event("till-01", 2, [("PEN", 1)]), "ts": ts(60)},  # beyond 10 s
        ]
        statuses = [
            {"v": 1, "device": "till-02", "online": True, "ts": ts(5), "outbox": 0},
            {"v": 1, "device": "till-03", "online": True, "ts": ts(60), "outbox": 0},
        ]
        batch = [message(f"{ROOT}/kiosk/till-01/stock", e, i) for i, e in enumerate(events)]
        batch += [message(f"{ROOT}/kiosk/{s['device']}/status", s, 9) for s in statuses]
        with c.db.atomic():
            assert c._apply(batch, then) == {"PEN"}
        assert [(d.topic, d.error) for d in store.DeadLetter.select().order_by(store.DeadLetter.id)] == [
            (f"{ROOT}/kiosk/till-01/stock",
             f"ts '{ts(60)}' is in the future (more than 10 s ahead of the controller's clock)"),
            (f"{ROOT}/kiosk/till-03/status",
             f"ts '{ts(60)}' is in the future (more than 10 s ahead of the controller's clock)"),
        ]  # fmt: skip
        assert [k.device for k in store.KioskState.select()] == ["till-02"]
    finally:
        c.db.close()


def test_a_catalog_request_is_answered_after_the_commit(spied):
    from kiosk.mqtt import master
    from tests.conftest import CATALOG

    with spied.db.atomic():
        master.import_rows(master.read_text(spied.rules, CATALOG, "c.csv"), "S1", NOW)
    get = message(f"{ROOT}/kiosk/till-01/catalog/get", topics.catalog_get("till-01", 0), 7)
    assert spied.apply_batch([get]) == set()
    assert spied.acks == [(7, 1)] and spied.served == 1 and letters() == []
    chunks = [topics.parse_catalog_chunk(p) for t, p, q, r in spied.published
              if t == f"{ROOT}/kiosk/till-01/catalog/data" and q == 1]  # fmt: skip
    assert [(c.kind, c.base, c.version, c.items, c.index, c.count) for c in chunks] == [
        ("full", 0, 1, 12, 0, 1)
    ]
    assert spied.catalog_bytes == sum(len(p) for t, p, q, r in spied.published if "catalog" in t)
    wrong = message(f"{ROOT}/kiosk/till-01/catalog/get", topics.catalog_get("till-02", 0), 8)
    spied.apply_batch([wrong])
    assert letters() == [
        (f"{ROOT}/kiosk/till-01/catalog/get", "device does not match the topic", None, None, 1)
    ]


# ---------------------------------------------------------------- the store's bookkeeping by hand

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
LATER = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)  # when the controller applies


def ev(device, seq, moves=(), kind="sale", minute=0, clock=None, counted=None):
    """A stock event as parse_stock_event makes it, made `minute`s after T0."""
    at = T0 + timedelta(minutes=minute)
    return topics.StockEvent(
        device=device, seq=seq, ts=at, kind=kind, txn=f"{device}-{seq}", moves=tuple(moves),
        counted=counted, counted_at={sku: at for sku in counted} if counted else None, clock=clock,
    )  # fmt: skip


@pytest.fixture
def st(tmp_path):
    from kiosk.mqtt import store

    db = store.open_store(str(tmp_path / "store.db"))
    yield store
    db.close()


def apply(st, *events):
    with st.store_db.atomic():
        return st.apply_events(list(events), LATER)


def test_a_move_at_the_counted_moment_is_absorbed_by_the_count(st):
    """Another device's sale made exactly when the count was taken: the shelf was
    counted with it (a move counts after a count only when it is later)."""
    apply(st, ev("a", 1, [("PEN", 10)], "receive", 0))
    apply(st, ev("b", 1, kind="count", minute=5, counted={"PEN": 7}))
    assert apply(st, ev("c", 1, [("PEN", -1)], minute=5)).changed == set()
    assert levels() == {"PEN": 7}
    apply(st, ev("d", 1, [("INK", -1)], minute=5))
    assert apply(st, ev("e", 1, kind="count", minute=5, counted={"INK": 4})).changed == {"INK"}
    assert levels() == {"PEN": 7, "INK": 4}  # the sale at the counted moment is absorbed


def test_which_moves_a_count_sees_before_it(st):
    """Moves applied before a count arrives: which of them count on top of it."""
    apply(
        st,
        ev("a", 4, [("S1", -1)], minute=9, clock="synced"),  # a's, posted earlier, made later
        ev("a", 3, [("S2", -1)], minute=9, clock="unsynced"),  # the same, clock unsynced
        ev("a", 2, [("S3", -1)], minute=9),  # the same, clock not said
        ev("a", 1, [("S4", -1)], minute=5),  # a's, made at the counted moment
        ev("b", 1, [("S5", -1)], minute=5),  # b's at the counted moment
        ev("b", 2, [("S6", -1)], minute=6),  # b's after it
        ev("a", 6, [("S7", -1)], minute=1),  # a's, posted after the count, dated before
    )
    counted = {f"S{i}": 10 for i in range(1, 8)}
    outcome = apply(st, ev("a", 5, kind="count", minute=5, clock="synced", counted=counted))
    assert outcome.changed == set(counted)
    assert levels() == {"S1": 9, "S2": 10, "S3": 9, "S4": 10, "S5": 10, "S6": 9, "S7": 9}


def test_an_unsynced_count_sees_only_later_seqs_of_its_device(st):
    apply(st, ev("a", 4, [("S1", -1)], minute=9, clock="synced"), ev("a", 6, [("S2", -1)]))
    apply(st, ev("a", 5, kind="count", minute=5, clock="unsynced", counted={"S1": 10, "S2": 10}))
    assert levels() == {"S1": 10, "S2": 9}


def test_an_older_count_never_overwrites_a_newer_one(st):
    apply(st, ev("a", 5, kind="count", minute=5, clock="unsynced", counted={"PEN": 5}))
    assert apply(st, ev("a", 3, kind="count", minute=9, clock="unsynced", counted={"PEN": 3})) == (
        set(), [ev("a", 3, kind="count", minute=9, clock="unsynced", counted={"PEN": 3})], []
    )  # fmt: skip
    apply(st, ev("b", 2, kind="count", minute=8, counted={"INK": 8}))
    apply(st, ev("c", 9, kind="count", minute=7, counted={"INK": 7}))  # earlier: ignored
    apply(st, ev("d", 2, kind="count", minute=8, counted={"INK": 6}))  # same time and seq
    assert levels() == {"PEN": 5, "INK": 8}
    apply(st, ev("e", 1, kind="count", minute=4, counted={"CAP": 4}))  # a SKU of its own
    assert levels() == {"PEN": 5, "INK": 8, "CAP": 4}
    level = st.StockLevel.get_by_id("INK")
    assert (level.count_device, level.count_seq, level.count_clock) == ("b", 2, None)
    assert level.count_at == "2026-06-01T10:08:00.000000Z"


def test_a_count_after_moves_of_the_same_batch(st):
    outcome = apply(
        st,
        ev("a", 1, [("PEN", -1), ("INK", -2)], minute=1),
        ev("b", 1, kind="count", minute=3, counted={"PEN": 20}),
        ev("a", 2, [("PEN", -4), ("CAP", -1)], minute=2),  # before the count: absorbed
        ev("c", 1, [("INK", -3)], minute=6),
    )
    assert outcome.changed == {"PEN", "INK", "CAP"}
    assert levels() == {"PEN": 20, "INK": -5, "CAP": -1}
    # a move absorbed by the latest count, then one after it, in one batch
    apply(st, ev("a", 3, [("PEN", -2), ("INK", -1)], minute=2), ev("d", 1, [("INK", -1)], 9))
    assert levels() == {"PEN": 20, "INK": -7, "CAP": -1}


def test_a_count_events_own_moves_are_not_applied(st):
    count = ev("a", 1, [("PEN", 5)], kind="count", minute=1, counted={"INK": 3})
    assert apply(st, count).changed == {"INK"}
    assert levels() == {"INK": 3}
    assert st.Move.select().count() == 0


def test_an_unsynced_move_arriving_after_its_devices_count(st):
    apply(st, ev("a", 5, kind="count", minute=5, clock="synced", counted={"PEN": 10}))
    assert apply(st, ev("a", 4, [("PEN", -1)], minute=9, clock="unsynced")).changed == set()
    assert apply(st, ev("a", 3, [("PEN", -1)], minute=9, clock="synced")).changed == {"PEN"}
    assert levels() == {"PEN": 9}


def test_large_batches_are_written_and_looked_up_in_chunks(st):
    many = ev("a", 1, [(f"S{i:04d}", 1) for i in range(1000)], "receive")
    assert len(apply(st, many).changed) == 1000
    assert st.Move.select().count() == 1000
    events = [ev("b", seq, [("PEN", 1)], "receive") for seq in range(1, 1003)]
    for start in range(0, len(events), 400):
        apply(st, *events[start : start + 400])
    again = apply(st, *events)
    assert (again.fresh, again.conflicts) == ([], [])
    assert levels()["PEN"] == 1002


def test_the_watermark_by_hand(st):
    apply(st, *(ev("a", seq, [("PEN", 1)]) for seq in (1, 2, 4)))
    apply(st, ev("b", 1, [("PEN", 1)]))
    assert st.advance_watermark("a") == (2, 4)
    assert st.KioskState.get_by_id("a").applied_to == 2
    assert st.advance_watermark("b") == (1, None)
    assert st.KioskState.get_by_id("a").applied_to == 2
    # a refused message carrying an applied seq (the kiosk resent a broken copy)
    with st.store_db.atomic():
        st.dead_letter("t", b"x", "bad", LATER, ("a", 2))
        st.dead_letter("t", b"y", "bad", LATER, ("a", 3))
    assert st.advance_watermark("a") == (4, None)
    assert [(k.device, k.applied_to) for k in st.KioskState.select().order_by(
        st.KioskState.device)] == [("a", 4), ("b", 1)]  # fmt: skip


def test_the_watermark_moves_at_most_10000_applied_seqs_at_a_time(st):
    events = [ev("a", seq, [("PEN", 1)]) for seq in range(1, 10_003)]
    for start in range(0, len(events), 500):
        apply(st, *events[start : start + 500])
    assert st.advance_watermark("a") == (10_000, None)
    assert st.advance_watermark("a") == (10_002, None)


def test_dead_letters_are_kept_storable_and_counted(st):
    import hashlib

    topic = "shop/store-042/kiosk/till-01/stock\ud800" + "t" * 200
    payload = b"a" * 1999 + "é".encode() + b"tail"
    error = "bad \ud800 text\x00" + "e" * 2100
    with st.store_db.atomic():
        st.dead_letter(topic, payload, error, LATER)
    row = st.DeadLetter.get()
    # cut to 200 characters, then made storable (a lone surrogate, NUL written out)
    assert row.topic == "shop/store-042/kiosk/till-01/stock\\ud800" + "t" * 165
    assert row.payload == "a" * 1999 + "\ufffd"  # cut at 2,000 bytes, mid-character
    assert row.error == "bad \\ud800 text\\x00" + "e" * 1989
    assert (row.times, row.last_at, row.received_at) == (1, "2026-06-01T13:00:00.000000Z",
                                                         "2026-06-01T13:00:00.000000Z")  # fmt: skip
    digest = hashlib.sha256(topic.encode("utf-8", "backslashreplace") + b"\0" + payload)
    assert row.digest == digest.hexdigest()
    with st.store_db.atomic():
        st.dead_letter(topic, payload, "again \x00" + "f" * 2100, LATER + timedelta(minutes=1))
    row = st.DeadLetter.get()
    assert (row.times, row.last_at) == (2, "2026-06-01T13:01:00.000000Z")
    assert row.error == "again \\x00" + "f" * 1993
    with st.store_db.atomic():
        st.dead_letter("t", b"\xff\xfe\x00ok", "e", LATER)
    assert st.DeadLetter.get(st.DeadLetter.topic == "t").payload == "\ufffd\ufffd\\x00ok"


def test_a_status_recorded_field_by_field(st):
    status = topics.KioskStatus("till-01", True, T0, 3, "paper_out", 7, catalog=2,
                                catalog_error="bad\x00" + "x" * 300)  # fmt: skip
    with st.store_db.atomic():
        st.record_status(status)
    k = st.KioskState.get_by_id("till-01")
    assert (k.online, k.last_seen, k.outbox, k.printer, k.reported_seq, k.catalog_version) == (
        True, "2026-06-01T10:00:00.000000Z", 3, "paper_out", 7, 2
    )  # fmt: skip
    assert k.catalog_error == "bad\\x00" + "x" * 196
    later = topics.KioskStatus("till-01", False, LATER, 0, "ok", 9, catalog=3, catalog_error="")
    with st.store_db.atomic():
        st.record_status(later)
    k = st.KioskState.get_by_id("till-01")
    assert (k.online, k.last_seen, k.outbox, k.printer, k.reported_seq) == (
        False, "2026-06-01T13:00:00.000000Z", 0, "ok", 9
    )  # fmt: skip
    assert (k.catalog_version, k.catalog_error) == (3, None)
    silent = topics.KioskStatus("till-01", True, LATER, 1, "ok", None)  # says no version
    with st.store_db.atomic():
        st.record_status(silent)
    k = st.KioskState.get_by_id("till-01")
    assert (k.online, k.outbox, k.reported_seq, k.catalog_version) == (True, 1, None, 3)


# ---------------------------------------------------------------- opening and migrating a store


def test_a_store_path_opens_sqlite_with_wal_full_sync_and_immediate_transactions(tmp_path):
    import sqlite3

    from kiosk.mqtt import store

    path = tmp_path / "a" / "b" / "store.db"  # folders made as needed
    db = store.open_store(str(path))
    try:
        assert path.is_file()
        assert db.pragma("journal_mode") == "wal"
        assert (db.pragma("synchronous"), db.pragma("busy_timeout")) == (2, 10_000)
        assert store.schema_version(db) == store.SCHEMA_VERSION
        assert "schema_version" not in db.get_tables()  # SQLite keeps it in user_version
        # a transaction takes the write lock when it begins: another writer makes it wait
        db.execute_sql("PRAGMA busy_timeout = 0")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(Exception, match="database is locked"), db.atomic():
                db.execute_sql("SELECT 1")
        finally:
            other.execute("ROLLBACK")
            other.close()
    finally:
        db.close()


def test_a_store_url_opens_that_database(tmp_path):
    from kiosk.mqtt import store

    path = tmp_path / "url.db"
    db = store.open_store(f"sqlite:///{path}")
    try:
        assert type(db).__name__ == "SqliteDatabase" and db.database == str(path)
        assert path.is_file() and store.schema_version(db) == store.SCHEMA_VERSION
        assert db.pragma("journal_mode") == "delete"  # the URL's own settings
    finally:
        db.close()


# The store as version 1 made it: schema 0 plus the columns step 1 added (at the end of
# each table, as ALTER TABLE puts them), no item master, user_version 1.
V1_STEPS = """
ALTER TABLE applied_event ADD COLUMN digest VARCHAR(64);
ALTER TABLE applied_event ADD COLUMN clock VARCHAR(8);
ALTER TABLE stock_level ADD COLUMN count_device VARCHAR(32);
ALTER TABLE stock_level ADD COLUMN count_seq INTEGER;
ALTER TABLE stock_level ADD COLUMN count_clock VARCHAR(8);
ALTER TABLE move ADD COLUMN clock VARCHAR(8);
ALTER TABLE dead_letter ADD COLUMN digest VARCHAR(64);
ALTER TABLE dead_letter ADD COLUMN times INTEGER;
ALTER TABLE dead_letter ADD COLUMN last_at VARCHAR(32);
ALTER TABLE dead_letter ADD COLUMN device VARCHAR(32);
ALTER TABLE dead_letter ADD COLUMN seq INTEGER;
UPDATE stock_level SET count_device = 'till-01', count_seq = 2;
UPDATE dead_letter SET times = 4, last_at = received_at;
INSERT INTO kiosk_state (device, online, last_seen, outbox, printer, applied_to, reported_seq)
  VALUES ('till-01', 1, '2026-11-01T12:06:00.000000Z', 0, 'ok', 2, 2);
PRAGMA user_version = 1;
"""


def old_store(path, *steps: str) -> None:
    import sqlite3

    from tests.test_controller_store import OLD_SCHEMA

    with sqlite3.connect(path) as old:
        old.executescript(OLD_SCHEMA.format(pk="INTEGER NOT NULL PRIMARY KEY", bool="INTEGER"))
        for step in steps:
            old.executescript(step)
    old.close()


def test_a_sqlite_store_made_by_version_1_is_migrated(tmp_path):
    import sqlite3

    from kiosk.mqtt import store

    path = tmp_path / "controller.db"
    old_store(path, V1_STEPS)
    db = store.open_store(str(path))
    try:
        assert store.schema_version(db) == store.SCHEMA_VERSION == 5
        assert {"master_item", "catalog_version", "catalog_change", "scheduled_change"} <= set(
            db.get_tables()
        )
        columns = [c.name for c in db.get_columns("kiosk_state")]
        assert columns[-2:] == ["catalog_version", "catalog_error"]
        k = store.KioskState.get_by_id("till-01")
        assert (k.applied_to, k.reported_seq, k.catalog_version, k.catalog_error) == (
            2,
            2,
            None,
            None,
        )
        status = topics.KioskStatus("till-01", True, T0, 0, "ok", 3, catalog=4, catalog_error="no")
        with db.atomic():
            store.record_status(status)
        k = store.KioskState.get_by_id("till-01")
        assert (k.reported_seq, k.catalog_version, k.catalog_error) == (3, 4, "no")
        assert store.DeadLetter.get().times == 4  # kept as they were
        level = store.StockLevel.get_by_id("PEN")
        assert (level.on_hand, level.count_device, level.count_seq) == (40, "till-01", 2)
    finally:
        db.close()
    # the store as version 1 left it, kept beside it
    with sqlite3.connect(tmp_path / "controller.db.schema-1.bak") as kept:
        assert kept.execute("PRAGMA user_version").fetchone() == (1,)
        assert "catalog_version" not in {
            c[1] for c in kept.execute("PRAGMA table_info(kiosk_state)")
        }
    kept.close()


def test_a_half_done_first_step_is_finished(tmp_path):
    """A store of schema 0 where the dead letters' counting columns were added by hand
    and one letter already counted: the step adds what is missing and fills only the
    letters that have no count yet."""
    from kiosk.mqtt import store

    path = tmp_path / "controller.db"
    old_store(
        path,
        "ALTER TABLE dead_letter ADD COLUMN times INTEGER;"
        "ALTER TABLE dead_letter ADD COLUMN last_at VARCHAR(32);"
        "INSERT INTO dead_letter (topic, payload, error, received_at, times, last_at) VALUES "
        "('t', 'p', 'e', '2026-11-01T12:07:00.000000Z', 3, '2026-11-02T08:00:00.000000Z');",
    )
    db = store.open_store(str(path))
    try:
        assert store.schema_version(db) == store.SCHEMA_VERSION == 5
        rows = [(d.times, d.last_at, d.digest, d.device, d.seq)
                for d in store.DeadLetter.select().order_by(store.DeadLetter.id)]  # fmt: skip
        assert rows == [
            (1, "2026-11-01T12:05:00.000000Z", None, None, None),
            (3, "2026-11-02T08:00:00.000000Z", None, None, None),
        ]
        level = store.StockLevel.get_by_id("PEN")
        assert (level.count_device, level.count_seq, level.count_clock) == ("till-01", 2, None)
    finally:
        db.close()


# ---------------------------------------------------------------- more of the contract word for word


def test_a_status_with_the_item_master_version(monkeypatch):
    monkeypatch.setattr(topics, "ts_now", lambda: TS)
    assert topics.kiosk_status("till-01", True, 0, "ok", None, 7, "e" * 300) == {
        "v": 1, "device": "till-01", "online": True, "ts": TS, "outbox": 0, "printer": "ok",
        "catalog": 7, "catalog_error": "e" * 200,
    }  # fmt: skip
    plain = topics.kiosk_status("till-01", True, 0, "ok", 0, 0, "")
    assert (plain["seq"], plain["catalog"], "catalog_error" in plain) == (0, 0, False)
    assert "catalog" not in topics.kiosk_status("till-01", True, 0, "ok", 1)
    s = topics.parse_kiosk_status(status(catalog=7, catalog_error="x" * 200), "till-01", NOW)
    assert (s.catalog, s.catalog_error, s.seq) == (7, "x" * 200, None)
    s = topics.parse_kiosk_status(status(catalog=0, catalog_error=""), "till-01", NOW)
    assert (s.catalog, s.catalog_error) == (0, None)
    s = topics.parse_kiosk_status(status(catalog=2**31 - 1, catalog_error=None), "till-01", NOW)
    assert (s.catalog, s.catalog_error) == (2**31 - 1, None)
    for changes, message in [
        ({"catalog": -1}, "catalog -1 is out of range 0..2147483647"),
        ({"catalog": 2**31}, "catalog 2147483648 is out of range 0..2147483647"),
        ({"catalog": "7"}, "catalog must be an integer"),
        ({"catalog_error": "x" * 201}, "catalog_error must be text of at most 200 characters"),
        ({"catalog_error": 5}, "catalog_error must be text of at most 200 characters"),
        ({"seq": 2**31}, "seq 2147483648 is out of range 0..2147483647"),
        ({"seq": "1"}, "seq must be an integer"),
        ({"outbox": ...}, "outbox must be an integer"),
        ({"online": ...}, "online must be true or false"),
        ({"device": ...}, "device must be a device id"),
        ({"ts": ...}, "ts must be an ISO-8601 UTC string"),
    ]:
        assert refused(topics.parse_kiosk_status, status(**changes), "till-01", NOW) == message, (
            changes
        )


@pytest.mark.parametrize(
    ("payload", "accepted"),
    [
        # an escaped quote does not end the string: the brackets after it are text
        (b'{"v": 1, "s": "a\\"[[[[[[[[", "t": "b"}', True),
        # an escaped backslash does: the nesting after the string counts
        (b'{"v": 1, "s": "a\\\\", "a": [[[[[[[]]]]]]]}', False),
        (b'{"v": 1, "s": "\\\\\\"[[[[[[[", "a": [[[[[[[]]]]]]]}', False),
        # brackets side by side do not nest
        (b'{"v": 1, "a": [[], [], [], [], [], [], [], []]}', True),
        (b'{"v": 1, "a": [[[[{}]]]], "b": [[[[{}]]]]}', True),
        (b'{"v": 1, "a": [[[[[[]]]]]]}', False),
    ],
)
def test_nesting_is_counted_past_escapes_and_closers(payload, accepted):
    if accepted:
        assert topics.parse_resync(payload[:-1] + b', "from_seq": 3}') == 3
    else:
        assert refused(topics.parse_resync, payload) == "JSON nested deeper than 6"


def test_a_key_given_twice_is_refused_word_for_word():
    assert refused(topics.parse_resync, b'{"v": 1, "a": 1, "from_seq": 2, "a": 3}') == (
        "key 'a' appears twice"
    )
    long = "k" * 50
    assert refused(topics.parse_resync, f'{{"v": 1, "{long}": 1, "{long}": 2}}'.encode()) == (
        f"key {'k' * 40!r} appears twice"
    )
    assert refused(topics.parse_resync, b'{"v": 1, "b": 1, "c": 2, "c": 2, "b": 1}') == (
        "key 'c' appears twice"
    )


# ---------------------------------------------------------------- attendant alerts and status extras


def alert_raw(**changes) -> bytes:
    data = {"v": 1, "device": "till-01", "id": "a-1", "kind": "call_staff", "text": "Help",
            "ts": TS}  # fmt: skip
    data.update(changes)
    return raw({k: v for k, v in data.items() if v is not ...})


def test_alert_topics_and_payloads_written_out(monkeypatch):
    monkeypatch.setattr(topics, "ts_now", lambda: TS)
    root = "shop/store-042"
    assert topics.kiosk_alert_topic(root, "till-01") == "shop/store-042/kiosk/till-01/alert"
    assert topics.kiosk_ack_topic(root, "till-01") == "shop/store-042/kiosk/till-01/ack"
    assert topics.open_alert_topic(root, "till-01", "a-1") == "shop/store-042/alerts/till-01/a-1"
    assert topics.alert_acl(root) == [
        "pattern write shop/store-042/kiosk/%u/alert",
        "pattern write shop/store-042/kiosk/%u/ack",
        "pattern read shop/store-042/alerts/#",
    ]
    assert topics.alert("till-01", "a-1", "age_check", "t" * 250) == {
        "v": 1, "device": "till-01", "id": "a-1", "kind": "age_check", "text": "t" * 200, "ts": TS,
    }  # fmt: skip
    assert topics.alert("till-01", "a-1", "other", "x", "2026-01-01T00:00:00Z")["ts"] == (
        "2026-01-01T00:00:00Z"
    )
    assert topics.alert_ack("cart-1", "till-01", "a-1", "b" * 40) == {
        "v": 1, "device": "cart-1", "alert": "till-01/a-1", "by": "b" * 32,
    }  # fmt: skip
    assert topics.status_extras("1.2.3" + "x" * 40, True) == {
        "app": ("1.2.3" + "x" * 40)[:32], "clock": "synced",
    }  # fmt: skip
    assert topics.status_extras("1", False) == {"app": "1", "clock": "unsynced"}


def test_an_alert_parsed_field_by_field():
    a = topics.parse_alert(alert_raw(text="Tab\there"), "till-01", NOW)
    assert a == topics.Alert("till-01", "a-1", "call_staff", "Tab\there",
                             datetime(2026, 6, 1, 11, 59, tzinfo=UTC))  # fmt: skip
    assert a.key == "till-01/a-1"
    plain = topics.parse_alert(alert_raw(text=..., id="Z" * 32), "till-01", NOW)
    assert (plain.text, plain.id) == ("", "Z" * 32)
    # a clock that is off: the alert still comes through, placed now
    assert topics.parse_alert(alert_raw(ts="2019-12-31T23:59:59Z"), "till-01", NOW).ts == NOW
    assert topics.parse_alert(alert_raw(ts="2026-06-01T12:05:01Z"), "till-01", NOW).ts == NOW
    edge = topics.parse_alert(alert_raw(ts="2026-06-01T12:05:00Z"), "till-01", NOW)
    assert edge.ts == datetime(2026, 6, 1, 12, 5, tzinfo=UTC)
    assert topics.parse_alert(alert_raw(ts="2026-06-01T12:00:30Z"), "till-01", NOW, 10).ts == NOW
    floor = topics.parse_alert(alert_raw(ts="2020-01-01T00:00:00Z"), "till-01", NOW)
    assert floor.ts == datetime(2020, 1, 1, tzinfo=UTC)
    recent = topics.parse_alert(alert_raw(ts=topics.ts_now()), "till-01")  # this machine's clock
    assert abs((recent.ts - datetime.now(UTC)).total_seconds()) < 3600
    for kind in topics.ALERT_KINDS:
        assert topics.parse_alert(alert_raw(kind=kind), "till-01", NOW).kind == kind


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (alert_raw(text="x" * 2100), "alert message of 2213 bytes is over 2048"),
        (alert_raw(device="till-02"), "device does not match the topic"),
        (alert_raw(id="-a"), "id must be 1-32 letters, digits, '_' or '-'"),
        (alert_raw(id="a" * 33), "id must be 1-32 letters, digits, '_' or '-'"),
        (alert_raw(id=5), "id must be 1-32 letters, digits, '_' or '-'"),
        (alert_raw(kind="fire"), "unknown alert kind 'fire'"),
        (alert_raw(kind="k" * 30), f"unknown alert kind {'k' * 20!r}"),
        (alert_raw(kind=["call_staff"]), "unknown alert kind \"['call_staff']\""),
        (alert_raw(text="x" * 201), "text must be text of at most 200 characters"),
        (alert_raw(text=7), "text must be text of at most 200 characters"),
        (alert_raw(text="a\nb"), "text must not hold control characters"),
        (alert_raw(text="\x1f"), "text must not hold control characters"),
        (alert_raw(ts=...), "ts must be an ISO-8601 UTC string"),
        (alert_raw(v=2), "unsupported schema version '2'"),
    ],
)  # fmt: skip
def test_alert_refusals_word_for_word(payload, message):
    assert refused(topics.parse_alert, payload, "till-01", NOW) == message


def test_a_2048_byte_alert_is_read():
    base = alert_raw(pad="")
    exactly = alert_raw(pad="x" * (2048 - len(base)))
    assert len(exactly) == 2048
    assert topics.parse_alert(exactly, "till-01", NOW).text == "Help"
    assert refused(topics.parse_alert, "text", "till-01", NOW) == "payload must be bytes"


def ack_raw(**changes) -> bytes:
    data = {"v": 1, "device": "cart-1", "alert": "till-01/a-1", "by": "S1"}
    data.update(changes)
    return raw({k: v for k, v in data.items() if v is not ...})


def test_an_acknowledgement_parsed_and_refused():
    ack = topics.parse_alert_ack(ack_raw(), "cart-1")
    assert ack == topics.AlertAck("cart-1", "till-01", "a-1", "S1")
    assert topics.parse_alert_ack(ack_raw(by=...), "cart-1").by == "cart-1"
    assert topics.parse_alert_ack(ack_raw(by="b" * 32), "cart-1").by == "b" * 32
    for changes, message in [
        ({"device": "cart-2"}, "device does not match the topic"),
        ({"alert": "till-01"}, "alert must be <device>/<id>"),
        ({"alert": "till-01/a/b"}, "alert must be <device>/<id>"),
        ({"alert": 5}, "alert must be <device>/<id>"),
        ({"alert": "-x/a-1"}, "alert must be <device>/<id>"),
        ({"alert": "till-01/-a"}, "alert must be <device>/<id>"),
        ({"by": "b" * 33}, "by must be text of at most 32 characters"),
        ({"by": "S\x001"}, "by must not hold control characters"),
    ]:
        assert refused(topics.parse_alert_ack, ack_raw(**changes), "cart-1") == message, changes
    big = ack_raw(by="x" * 2100)
    assert refused(topics.parse_alert_ack, big, "cart-1") == (
        f"alert message of {len(big)} bytes is over 2048"
    )


def test_an_open_alert_read_back_from_its_retained_topic():
    root = "shop/store-042"
    topic = "shop/store-042/alerts/till-01/a-1"
    assert topics.parse_open_alert(b"", root, topic) is None
    old = alert_raw(ts="2026-01-01T00:00:00Z")  # a retained alert can be months old
    got = topics.parse_open_alert(old, root, topic)
    assert (got.device, got.id, got.ts) == ("till-01", "a-1", datetime(2026, 1, 1, tzinfo=UTC))
    for where, message in [
        ("shop/store-043/alerts/till-01/a-1", "not an alert topic"),
        ("shop/store-042x/alerts/till-01/a-1", "not an alert topic"),
        ("shop/store-042/alarms/till-01/a-1", "not an alert topic"),
        ("shop/store-042/alerts/till-01", "not an alert topic"),
        ("shop/store-042/alerts/till-01/a-1/x", "not an alert topic"),
        ("shop/store-042/alerts/till-02/a-1", "device does not match the topic"),
        ("shop/store-042/alerts/till-01/a-2", "id does not match the topic"),
    ]:
        assert refused(topics.parse_open_alert, old, root, where) == message, where


def test_status_extras_read_within_bounds():
    extras = topics.parse_status_extras
    assert extras(status(app="1.4.0", clock="synced")) == {"app": "1.4.0", "clock": "synced"}
    assert extras(status(app="a" * 32, clock="unsynced")) == {"app": "a" * 32, "clock": "unsynced"}
    assert extras(status(app="a" * 33, clock="maybe")) == {"app": None, "clock": None}
    assert extras(status(app="", clock=1)) == {"app": None, "clock": None}
    assert extras(status(app=7)) == {"app": None, "clock": None}
    assert extras(status()) == {"app": None, "clock": None}
    assert extras(b"junk") == {"app": None, "clock": None}


def test_more_bounds_word_for_word():
    moves = [{"sku": f"S{i}", "delta": 1} for i in range(1000)]
    assert len(topics.parse_stock_event(raw(event(moves=moves)), "till-01", NOW).moves) == 1000
    counted = {f"S{i}": 1 for i in range(1000)}
    count = event(kind="count", moves=[], counted=counted, counted_at=dict.fromkeys(counted, TS))
    assert len(topics.parse_stock_event(raw(count), "till-01", NOW).counted) == 1000
    nineteen = 10**18 + 1
    assert refused(topics.parse_stock_event, raw(event(seq=nineteen)), "till-01", NOW) == (
        f"seq {nineteen} is out of range 1..2147483647"
    )
    assert refused(topics.parse_ts, "x" * 40) == f"ts {'x' * 40!r} is not an ISO-8601 time"
    assert refused(topics.parse_ts, "x" * 41) == "ts must be an ISO-8601 UTC string"
    assert refused(topics.parse_ts, None) == "ts must be an ISO-8601 UTC string"
    assert refused(topics.parse_kiosk_status, status(printer="p" * 30), "till-01", NOW) == (
        f"unknown printer state {'p' * 20!r}"
    )
    # objects nest too, not only lists
    objects = b'{"v": 1, "a": {"b": {"c": {"d": {"e": {"f": {}}}}}}}'
    assert refused(topics.parse_resync, objects) == "JSON nested deeper than 6"
    # after a closer the depth goes down by one, not back to the start
    assert refused(topics.parse_resync, b'{"v": 1, "a": [[], [[[[[]]]]]]}') == (
        "JSON nested deeper than 6"
    )


def test_an_unsynced_clock_places_times_off_the_window_at_now():
    def ts_of(when: str) -> datetime:
        return topics.parse_stock_event(raw(event(ts=when, clock="unsynced")), "till-01", NOW).ts

    assert ts_of("2020-01-01T00:00:00.000000Z") == datetime(2020, 1, 1, tzinfo=UTC)
    assert ts_of("2019-12-31T23:59:59.999999Z") == NOW
    assert ts_of("2026-06-01T12:05:00.000000Z") == NOW + timedelta(minutes=5)
    assert ts_of("2026-06-01T12:05:00.000001Z") == NOW
    assert refused(topics.parse_stock_event, raw(event(ts="yesterday", clock="unsynced")),
                   "till-01", NOW) == "ts 'yesterday' is not an ISO-8601 time"  # fmt: skip


def test_times_are_utc_whatever_this_machines_time_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30 all year
    time.tzset()
    try:
        e = topics.parse_stock_event(raw(event(ts="2026-06-01T17:29:00+05:30")), "till-01", NOW)
        assert e.ts.strftime(topics.TS_FORMAT) == "2026-06-01T11:59:00.000000Z"
        moment = datetime.strptime(topics.ts_now(), topics.TS_FORMAT).replace(tzinfo=UTC)
        assert abs((datetime.now(UTC) - moment).total_seconds()) < 600
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_catalog_request_that_cannot_be_answered_is_dead_lettered(spied, caplog):
    sql(spied, "DROP TABLE catalog_version")  # the item master cannot be read
    get = message(f"{ROOT}/kiosk/till-01/catalog/get", topics.catalog_get("till-01", 0), 7)
    assert spied.apply_batch([get]) == set()
    ((topic, error, device, seq, times),) = letters()
    assert (topic, device, seq, times) == (f"{ROOT}/kiosk/till-01/catalog/get", None, None, 1)
    assert error.startswith("could not answer: OperationalError('no such table: catalog_version")
    assert spied.served == 0 and spied.acks == [(7, 1)]
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "could not answer till-01's catalog request"
    ]


def test_alert_texts_spaces_short_versions_and_far_retained_times():
    a = topics.parse_alert(alert_raw(text="Please help at till 1"), "till-01", NOW)
    assert a.text == "Please help at till 1"
    assert topics.parse_status_extras(status(app="7")) == {"app": "7", "clock": None}
    # a retained alert is read with ten years (of 365 days) of tolerance for its clock
    root, topic = "shop/store-042", "shop/store-042/alerts/till-01/a-1"

    def read_back(ahead: timedelta) -> datetime:
        when = (datetime.now(UTC) + ahead).strftime(topics.TS_FORMAT)
        return topics.parse_open_alert(alert_raw(ts=when), root, topic).ts

    far = read_back(timedelta(days=3649))  # kept as it says
    assert far - datetime.now(UTC) > timedelta(days=3648)
    for ahead in (timedelta(days=3650, seconds=3600), timedelta(days=3655)):  # placed now
        assert abs(read_back(ahead) - datetime.now(UTC)) < timedelta(hours=1)


def test_an_unsynced_counts_bad_moment_is_named():
    count = event(kind="count", moves=[], clock="unsynced", counted={"PEN": 1},
                  counted_at={"PEN": "later"})  # fmt: skip
    assert refused(topics.parse_stock_event, raw(count), "till-01", NOW) == (
        "counted_at of PEN 'later' is not an ISO-8601 time"
    )
