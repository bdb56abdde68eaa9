"""Hostile input: no message a kiosk may send can stop the shop controller.

Hypothesis-made payloads go straight into the controller's apply path (parse and
apply in a real SQLite store); then an authenticated kiosk sends poison through a
real Mosquitto to the real `kiosk controller` process, across a restart."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.config import parse
from kiosk.ledger.models import utc_now
from kiosk.mqtt import store, topics
from kiosk.mqtt.controller import Controller
from tests.mqtt_env import ROOT, Mosquitto, wait_until
from tests.test_sync import RawClient, applied, make_ledger, outbox_payloads

STOCK = f"{ROOT}/kiosk/till-01/stock"
STATUS = f"{ROOT}/kiosk/till-01/status"


def stamp(moment: datetime) -> str:
    return moment.strftime(topics.TS_FORMAT)


def good(seq: int, delta: int = -1, **extra) -> dict:
    return {
        "v": 1, "device": "till-01", "seq": seq, "id": f"till-01:{seq}",
        "ts": stamp(datetime.now(UTC) - timedelta(minutes=1)), "kind": "sale",
        "txn": f"till-01-{seq:06d}", "moves": [{"sku": "PEN", "delta": delta}], **extra,
    }  # fmt: skip


def message(topic: str, payload: bytes, mid: int = 1) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid, topic.encode())
    msg.payload = payload
    msg.qos = 1
    return msg


@pytest.fixture
def controller(tmp_path):
    config = parse('[device]\nid = "hq"\nstore = "store-042"\n')
    ctl = Controller(config, str(tmp_path / "controller.db"))  # not connected: no broker
    yield ctl
    ctl.db.close()


def dead_total() -> int:
    return store.DeadLetter.select(store.fn.SUM(store.DeadLetter.times)).scalar() or 0


def pen() -> int:
    level = store.StockLevel.get_or_none(store.StockLevel.sku == "PEN")
    return level.on_hand if level else 0


# ------------------------------------------------------------ what a hostile kiosk sends

FAR = datetime(2999, 1, 1, tzinfo=UTC)
bad_ints = st.one_of(
    st.integers(min_value=topics.MAX_SEQ + 1),
    st.integers(max_value=0),
    st.integers(min_value=2**63 - 2, max_value=2**80),
)
not_ints = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5), st.booleans(),
    st.none(), st.lists(st.integers(), max_size=3),
)  # fmt: skip
bad_times = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(2019, 12, 31)).map(
        lambda d: d.strftime(topics.TS_FORMAT)
    ),
    st.datetimes(min_value=datetime(2100, 1, 1)).map(lambda d: d.isoformat() + "+00:00"),
    st.sampled_from(
        ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00", "yesterday", "",
         "2026-11-01T12:00:00", "2026-02-30T00:00:00Z", "9" * 60]
    ),
    not_ints.filter(lambda v: not isinstance(v, str)),
)  # fmt: skip
forbidden = st.text(min_size=1).filter(lambda t: not topics._TXN.fullmatch(t))


def not_a_txn(value) -> bool:
    return not (isinstance(value, str) and topics._TXN.fullmatch(value))


def mutated(seq: int, data: st.DataObject) -> bytes:
    """A valid event with one thing made invalid."""
    event = good(seq)
    how = data.draw(st.sampled_from(
        ["seq", "seq_type", "ts", "delta", "delta_type", "count", "count_at", "txn", "kind",
         "device", "id", "v", "clock", "moves", "extra_key"]
    ))  # fmt: skip
    if how == "seq":
        value = data.draw(bad_ints)
        event.update(seq=value, id=f"till-01:{value}")
    elif how == "seq_type":
        event["seq"] = data.draw(not_ints)
    elif how == "ts":
        event["ts"] = data.draw(bad_times)
    elif how == "delta":
        over = data.draw(st.integers(min_value=topics.MAX_MOVE_QTY + 1, max_value=2**100))
        event["moves"] = [{"sku": "PEN", "delta": data.draw(st.sampled_from([over, -over]))}]
    elif how == "delta_type":
        event["moves"] = [{"sku": "PEN", "delta": data.draw(not_ints)}]
    elif how == "count":
        qty = data.draw(
            st.one_of(
                st.integers(max_value=-1), st.integers(min_value=topics.MAX_COUNT_QTY + 1), not_ints
            )
        )
        event.update(kind="count", counted={"PEN": qty}, counted_at={"PEN": event["ts"]})
    elif how == "count_at":
        event.update(kind="count", counted={"PEN": 3}, counted_at={"PEN": data.draw(bad_times)})
    elif how == "txn":
        # not_ints holds short texts, and "0" is a valid receipt number: not those
        event["txn"] = data.draw(st.one_of(forbidden, not_ints.filter(not_a_txn)))
    elif how == "kind":
        event["kind"] = data.draw(st.text(max_size=12).filter(lambda k: k not in topics.KINDS))
    elif how == "device":
        event["device"] = data.draw(st.text(max_size=40).filter(lambda d: d != "till-01"))
    elif how == "id":
        event["id"] = data.draw(st.text(max_size=20).filter(lambda i: i != f"till-01:{seq}"))
    elif how == "v":
        event["v"] = data.draw(st.one_of(st.integers().filter(lambda v: v != 1), not_ints))
    elif how == "clock":
        event["clock"] = data.draw(st.one_of(
            st.text(max_size=10).filter(lambda c: c not in topics.CLOCK_STATES),
            st.integers()))  # fmt: skip
    elif how == "moves":
        event["moves"] = data.draw(st.one_of(
            st.lists(st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
                     min_size=1, max_size=3).filter(lambda ms: any(set(m) != {"sku", "delta"}
                                                                   for m in ms)),
            st.sampled_from([None, "PEN", 5, {"sku": "PEN", "delta": 1}]),
            st.just([{"sku": "PEN", "delta": 1}] * (topics.MAX_LINES + 1)),
        ))  # fmt: skip
    else:
        event["moves"] = [{"sku": "PEN", "delta": 1, data.draw(st.text(max_size=8)): 0}]
    return json.dumps(event).encode()


def raw_poison(data: st.DataObject) -> bytes:
    """Bytes no parser should survive by accident."""
    kind = data.draw(st.sampled_from(["bytes", "deep", "digits", "utf8", "nan", "big"]))
    if kind == "bytes":
        return data.draw(st.binary(max_size=300))
    if kind == "deep":
        n = data.draw(st.integers(min_value=topics.MAX_DEPTH, max_value=40_000))
        opener = data.draw(st.sampled_from([b"[", b'{"a":']))
        closer = b"]" if opener == b"[" else b"}"
        return b'{"v":1,"x":' + opener * n + b"1" + closer * n + b"}"
    if kind == "digits":
        n = data.draw(st.integers(min_value=20, max_value=60_000))
        return json.dumps(good(1)).encode().replace(b'"seq": 1', b'"seq": ' + b"9" * n)
    if kind == "utf8":
        cut = data.draw(st.integers(min_value=0, max_value=40))
        body = json.dumps(good(1)).encode()
        bad = data.draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"]))
        return body[:cut] + bad + body[cut:]
    if kind == "nan":
        return json.dumps(good(1)).encode().replace(b'"delta": -1', b'"delta": NaN')
    return b'{"v":1,"pad":"' + b"x" * topics.MAX_PAYLOAD + b'"}'


def status_poison(data: st.DataObject) -> bytes:
    payload = {"v": 1, "device": "till-01", "online": True, "ts": stamp(datetime.now(UTC)),
               "outbox": 0, "printer": "ok", "seq": 3}  # fmt: skip
    field = data.draw(st.sampled_from(["outbox", "seq", "ts", "online", "printer", "device"]))
    payload[field] = data.draw(
        {
            "outbox": st.one_of(
                st.integers(min_value=topics.MAX_OUTBOX + 1), st.integers(max_value=-1)
            ),
            "seq": st.one_of(st.integers(min_value=topics.MAX_SEQ + 1), st.integers(max_value=-1)),
            "ts": bad_times,
            "online": st.one_of(st.integers(), st.none(), st.text()),
            "printer": st.text().filter(lambda p: p not in ("ok", "paper_out", "offline")),
            "device": st.text().filter(lambda d: d != "till-01"),
        }[field]
    )
    return json.dumps(payload).encode()


@settings(
    max_examples=300,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_no_payload_stops_the_apply_path(controller, data):
    seqs = test_no_payload_stops_the_apply_path.seqs
    poison: list[mqtt.MQTTMessage] = []
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        source = data.draw(st.sampled_from(["mutated", "raw", "status", "conflict"]))
        if source == "mutated":
            poison.append(message(STOCK, mutated(next(seqs), data)))
        elif source == "raw":
            poison.append(message(data.draw(st.sampled_from([STOCK, STATUS])), raw_poison(data)))
        elif source == "status":
            poison.append(message(STATUS, status_poison(data)))
        else:  # a seq applied before, now with other content
            seq = next(seqs)
            controller.apply_batch([message(STOCK, json.dumps(good(seq)).encode())])
            poison.append(message(STOCK, json.dumps(good(seq, delta=-7)).encode()))
    goods = [message(STOCK, json.dumps(good(next(seqs))).encode()) for _ in range(2)]
    batch = data.draw(st.permutations(poison + goods))
    before = (controller.dead, controller.applied, dead_total(), pen())
    controller.apply_batch(batch)  # raises nothing
    assert controller.dead - before[0] == len(poison)
    assert controller.applied - before[1] == len(goods)
    assert dead_total() - before[2] == len(poison)  # each one kept (or counted again)
    assert pen() - before[3] == -len(goods)  # the good ones applied, the poison changed nothing
    # And the next message on its own still applies.
    controller.apply_batch([message(STOCK, json.dumps(good(next(seqs))).encode())])
    assert pen() - before[3] == -len(goods) - 1


test_no_payload_stops_the_apply_path.seqs = itertools.count(1)


def test_a_far_future_count_is_refused_and_does_not_freeze_the_level(controller):
    far = stamp(FAR)
    count = {**good(1), "kind": "count", "moves": [], "counted": {"PEN": 100},
             "counted_at": {"PEN": far}, "ts": far}  # fmt: skip
    controller.apply_batch([message(STOCK, json.dumps(count).encode())])
    assert controller.dead == 1 and "in the future" in store.DeadLetter.get().error
    controller.apply_batch([message(STOCK, json.dumps(good(2)).encode())])
    assert pen() == -1  # the real sale counts
    # Within the tolerance the count applies, placed no later than the controller's now.
    soon = stamp(utc_now() + timedelta(seconds=100))
    count.update(seq=3, id="till-01:3", ts=soon, counted_at={"PEN": soon})
    controller.apply_batch([message(STOCK, json.dumps(count).encode())])
    controller.apply_batch([message(STOCK, json.dumps(good(4)).encode())])
    assert pen() == 99  # the sale after it still counts


def test_a_failure_of_our_own_is_dead_lettered_and_the_rest_applies(controller, monkeypatch):
    real_apply, real_parse = store.apply_events, topics.parse_stock_event

    def apply_events(events, now):
        if any(e.txn == "till-01-boom" for e in events):
            raise sqlite3.IntegrityError("simulated failure applying one event")
        return real_apply(events, now)

    def parse_stock_event(raw, *args):
        if b"parse-bug" in raw:
            raise RuntimeError("simulated bug in the parser")
        return real_parse(raw, *args)

    monkeypatch.setattr(store, "apply_events", apply_events)
    monkeypatch.setattr(topics, "parse_stock_event", parse_stock_event)
    batch = [
        message(STOCK, json.dumps(good(1)).encode()),
        message(STOCK, json.dumps({**good(2), "txn": "till-01-boom"}).encode()),
        message(STOCK, json.dumps({**good(3), "txn": "parse-bug"}).encode()),
        message(STOCK, json.dumps(good(4)).encode()),
    ]
    controller.apply_batch(batch)
    assert pen() == -2 and controller.applied == 2 and controller.dead == 2
    errors = sorted(d.error for d in store.DeadLetter.select())
    assert errors[0].startswith("could not apply: IntegrityError('simulated")
    assert errors[1].startswith("internal error: RuntimeError('simulated bug")
    # Even when the dead letter itself cannot be written, the loop goes on and acks.
    monkeypatch.setattr(store, "dead_letter", lambda *a: 1 / 0)
    acked = []
    monkeypatch.setattr(controller.client, "ack", lambda mid, qos: acked.append(mid))
    five = json.dumps(good(5)).encode()
    controller.apply_batch([message(STOCK, b"junk", mid=7), message(STOCK, five, mid=8)])
    assert acked == [7, 8] and pen() == -3


# ------------------------------------------------------------ through a real broker


def controller_status(db) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "kiosk.cli", "controller", "--db", str(db), "status",
         "--dead-letters", "50"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_poison_through_mosquitto_never_stops_the_controller(tmp_path):
    broker = Mosquitto(tmp_path / "broker", ["controller", "till-01"]).start()
    db = tmp_path / "controller.db"
    extra = f'[controller]\ndatabase = "{db}"\nresync_after_s = 60\n'
    process = broker.spawn("controller", "controller", tmp_path, extra)
    kiosk = None
    try:
        events = outbox_payloads(make_ledger(tmp_path / "till-01.db", "till-01", 4))  # seq 1..5
        kiosk = RawClient(broker, "till-01")  # the kiosk's own credentials, through its ACL
        wait_until(lambda: db.exists() and controller_up(db), 30, what="the controller")
        # Until the controller has subscribed the first event may go nowhere: send it
        # again until it is applied (a repeat is a harmless duplicate).
        wait_until(
            lambda: kiosk.publish(STOCK, events[0]) == 0 and applied(db) == 1,
            30,
            0.5,
            "the first event",
        )
        now = datetime.now(UTC)
        status = {"v": 1, "device": "till-01", "online": True, "ts": stamp(now), "printer": "ok"}
        body = json.dumps(events[1]).encode()
        poison = {
            "retained status, outbox past 64 bits": (STATUS, {**status, "outbox": 2**70}, True),
            "deep JSON": (STOCK, b"[" * 30_000 + b"]" * 30_000, False),
            "huge seq": (STOCK, body.replace(b'"seq": 2,', b'"seq":' + b"9" * 5000 + b","), False),
            "seq past 64 bits": (
                STOCK,
                {**events[1], "seq": 2**64, "id": f"till-01:{2**64}"},
                False,
            ),
            "counted past 64 bits": (
                STOCK,
                {
                    **events[1],
                    "kind": "count",
                    "counted": {"PEN": 2**63},
                    "counted_at": {"PEN": events[1]["ts"]},
                },
                False,
            ),
            "ts out of range": (STOCK, {**events[1], "ts": "9999-12-31T23:59:59-23:59"}, False),
            "far-future count": (
                STOCK,
                {
                    **events[1],
                    "kind": "count",
                    "counted": {"PEN": 5},
                    "counted_at": {"PEN": "2999-01-01T00:00:00.000000Z"},
                    "clock": "synced",  # a synchronised clock cannot be that far ahead
                },
                False,
            ),
            "invalid UTF-8": (STOCK, body.replace(b"till-01-", b"till-01-\xff"), False),
            "conflicting seq": (
                STOCK,
                {**events[0], "moves": [{"sku": "PEN", "delta": 999}]},
                False,
            ),
        }
        for topic, payload, retain in poison.values():
            assert kiosk.publish(topic, payload, retain=retain) == 0
        for event in events[1:3]:
            assert kiosk.publish(STOCK, event) == 0
        wait_until(lambda: applied(db) == 3, 30, what="the good events after the poison")
        wait_until(lambda: dead_count(db) == len(poison), 30, what="every poison dead-lettered")
        assert process.poll() is None, "the controller died"
        # Restart: the retained status comes again; the controller stays up and applies.
        process.terminate()
        process.wait(30)
        process = broker.spawn("controller", "controller", tmp_path, extra)
        wait_until(lambda: dead_times(db) == len(poison) + 1, 30, what="the retained one again")
        for event in events[3:]:
            assert kiosk.publish(STOCK, event) == 0
        wait_until(lambda: applied(db) == 5, 30, what="events after the restart")
        assert process.poll() is None, "the controller died after the restart"
        shown = controller_status(db)
        assert f"dead letters: {len(poison)}" in shown
        for reason in (
            "outbox",
            "nested deeper",
            "integer of 5000 digits",
            "integer of 20 digits",
            "count of PEN",
            "out of range",
            "in the future",
            "not UTF-8",
            "conflict: till-01:1",
        ):
            assert reason in shown, (reason, shown)
        assert f"{STATUS} (x2)" in shown
    finally:
        if kiosk:
            kiosk.close()
        process.terminate()
        process.wait(30)
        broker.stop(kill=True)


def controller_up(db) -> bool:
    try:
        with sqlite3.connect(db) as con:
            return con.execute("PRAGMA user_version").fetchone()[0] >= 1
    except sqlite3.Error:
        return False


def dead_count(db) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT COUNT(*) FROM dead_letter").fetchone()[0]


def dead_times(db) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT COALESCE(SUM(times), 0) FROM dead_letter").fetchone()[0]


def test_an_unsynchronised_kiosk_clock_places_its_events_when_they_arrive(controller):
    """A Pi without RTC or NTP: its time means nothing, but its sale is real. Outside
    the window the event is placed at the controller's receive time, never refused."""
    for seq, moment in ((1, FAR), (2, datetime(1970, 1, 1, tzinfo=UTC))):
        event = {**good(seq), "ts": stamp(moment), "clock": "unsynced"}
        before = utc_now()
        controller.apply_batch([message(STOCK, json.dumps(event).encode())])
        at = store.Move.get((store.Move.device == "till-01") & (store.Move.seq == seq)).at
        assert stamp(before) <= at <= stamp(utc_now())
    assert controller.dead == 0 and pen() == -2
    synced_far = {**good(3), "ts": stamp(FAR), "clock": "synced"}
    controller.apply_batch([message(STOCK, json.dumps(synced_far).encode())])
    assert controller.dead == 1 and "in the future" in store.DeadLetter.get().error


def test_moves_naming_a_sku_twice_and_duplicate_keys_are_refused(controller):
    twice = {**good(1), "moves": [{"sku": "PEN", "delta": 10**6}] * 2}
    controller.apply_batch([message(STOCK, json.dumps(twice).encode())])
    assert "sku PEN appears twice in moves" in store.DeadLetter.get().error
    raw = json.dumps(good(2)).replace('"seq": 2,', '"seq": 99, "seq": 2,')
    controller.apply_batch([message(STOCK, raw.encode())])
    assert controller.dead == 2 and pen() == 0


def test_the_depth_check_is_linear_in_the_payload(controller):
    """Unterminated escaped quotes made the old regex scan quadratic (17 s a message);
    the one-pass scan reads every byte once (a hang here is the regression)."""
    poison = b'[[[[[[["' + b'\\"' * 32_000  # 64 KB: 20 of them took minutes before
    for _ in range(20):
        controller.apply_batch([message(STOCK, poison)])
    assert controller.dead == 20 and "nested deeper" in store.DeadLetter.get().error


def test_a_refused_event_does_not_make_the_gap_check_ask_for_it_for_ever(controller):
    """A real event the bounds refuse (here dated in the far future) is dead-lettered
    with its device and seq, so the watermark passes it and no resync loop starts."""
    far = {**good(2), "ts": stamp(FAR)}
    batch = [json.dumps(good(1)), json.dumps(far), json.dumps(good(3))]
    controller.apply_batch([message(STOCK, p.encode()) for p in batch])
    assert store.advance_watermark("till-01") == (3, None)
    letter = store.DeadLetter.get()
    assert (letter.device, letter.seq) == ("till-01", 2)
    # Poison whose seq cannot be read, or belongs to another device, marks nothing.
    controller.apply_batch([message(STOCK, json.dumps({**good(5), "device": "till-02"}).encode())])
    assert store.advance_watermark("till-01") == (3, None)
