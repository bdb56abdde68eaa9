"""The controller's fast path for stock events and journals (msgspec Structs, vouched for
by re-encoding) against the careful parser, the oracle: on any payload, valid or hostile,
the fast path either declines or makes exactly what the careful parser makes, and every
refusal is the careful parser's. Kiosks' real payloads take the fast path."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kiosk.mqtt import journal_contract, journal_store, topics
from kiosk.mqtt.journal_contract import careful_journal, fast_journal, parse_journal
from kiosk.mqtt.topics import (
    PayloadError,
    StockEvent,
    careful_stock_event,
    fast_stock_event,
    parse_stock_event,
)
from kiosk.testing.ledgers import make_ledger

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
TOLERANCE = 300.0
DEVICE = "till-01"
SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def encode(data: dict) -> bytes:
    """As a kiosk writes it (kiosk/ledger/posting.py, kiosk/ledger/journal.py)."""
    return json.dumps(data, separators=(",", ":")).encode()


def stamp(moment: datetime) -> str:
    return moment.strftime(topics.TS_FORMAT)


# ------------------------------------------------------------------ valid payloads

skus = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._/-]{0,31}\Z")
txns = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}\Z")
seqs = st.integers(1, topics.MAX_SEQ)
# Times in the window (mostly), either side of its ends, and of other zones and precisions.
in_window = st.datetimes(datetime(2020, 1, 1), datetime(2026, 12, 7, 12, 5), timezones=st.just(UTC))
times = st.one_of(
    in_window.map(stamp),
    in_window.map(stamp),
    in_window.map(stamp),
    st.datetimes(datetime(1, 1, 1), datetime(9999, 1, 1), timezones=st.just(UTC)).map(stamp),
    st.sampled_from(
        [
            "2026-12-07T12:05:00.000000Z",  # the window's end
            "2026-12-07T12:05:00.000001Z",
            "2019-12-31T23:59:59.999999Z",
            "2026-12-07T11:00:00Z",
            "2026-12-07T13:00:00+02:00",
            "2026-12-07T11:00:00.000000",  # no zone
            "2026-12-07 11:00:00.000000Z",
            "2026-13-07T11:00:00.000000Z",
            "0001-01-01T00:00:00.000000+01:00",
        ]
    ),
)
clocks = st.sampled_from(["synced", "unsynced", None])


@st.composite
def stock_events(draw) -> dict:
    seq = draw(seqs)
    kind = draw(st.sampled_from(topics.KINDS))
    moves = draw(st.lists(skus, max_size=6, unique=True))
    device = draw(st.sampled_from([DEVICE, DEVICE, DEVICE, "till-02"]))  # till-02: wrong topic
    event = {
        "v": 1, "device": device, "seq": seq, "id": f"{device}:{seq}", "ts": draw(times),
        "kind": kind, "txn": draw(txns),
        "moves": [{"sku": s, "delta": draw(st.integers(-topics.MAX_MOVE_QTY,
                                                       topics.MAX_MOVE_QTY))} for s in moves],
    }  # fmt: skip
    clock = draw(clocks)
    if clock is not None:
        event["clock"] = clock
    if kind == "count":
        counted = draw(st.lists(skus, max_size=4, unique=True))
        event["counted"] = {s: draw(st.integers(0, topics.MAX_COUNT_QTY)) for s in counted}
        event["counted_at"] = {s: draw(times) for s in counted}
    return event


amounts = st.one_of(
    st.from_regex(r"\A-?[0-9]{1,12}(\.[0-9]{1,6})?\Z"),
    st.sampled_from(["1000000000000", "-1000000000000.000000", "9999999999999", "00.10", "-0"]),
)


@st.composite
def journals(draw) -> dict:
    parts = draw(st.integers(1, journal_contract.MAX_PARTS))
    part = draw(st.integers(1, parts))
    lines = []
    for sku, condition in draw(
        st.lists(
            st.tuples(skus, st.sampled_from([None, "resaleable", "damaged"])),
            max_size=5,
            unique=True,
        )  # fmt: skip
    ):
        line = {k: draw(amounts) for k in ("qty", "net", "total", "discount")}
        lines.append({"sku": sku, **line, **({"condition": condition} if condition else {})})
    message = {
        "v": 1, "device": draw(st.sampled_from([DEVICE, DEVICE, DEVICE, "till-02"])),
        "seq": draw(seqs), "parts": parts, "txn": draw(txns),
        "kind": draw(st.sampled_from(journal_contract.JOURNAL_KINDS)), "ts": draw(times),
        "clock": draw(clocks), "part": part,
    }  # fmt: skip
    if part == 1:
        message["currency"] = draw(st.sampled_from(["EUR", "CHF", "eur"]))
        message |= {k: draw(amounts) for k in ("net", "tax", "total", "discount", "rounding",
                                               "change")}  # fmt: skip
        codes = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,15}\Z")
        message["taxes"] = [
            {"code": c, "rate": draw(amounts), "net": draw(amounts), "tax": draw(amounts)}
            for c in draw(st.lists(codes, max_size=3, unique=True))
        ]
        message["tenders"] = [
            {"kind": k, "amount": draw(amounts)}
            for k in draw(st.lists(codes, max_size=3, unique=True))
        ]
    message["lines"] = lines
    return message


# ------------------------------------------------------------------ hostile changes

hostile_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**63, 10**19, 10**20, True, False, None, 1.0, -0.0, 1e308]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "sale",
            "count",
            "synced",
            "unsynced",
            "EUR",
            "1.5",
            "1e3",
            "x" * 99,
            "ŝku",
            "till-02",
            "PEN",
            "2026-12-07T11:00:00.000000Z",
        ]
    ),  # fmt: skip
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.just([[[[[[[[[1]]]]]]]]]),
)


def _containers(data) -> list:
    """Every dict and list inside `data` (data itself first)."""
    found, stack = [], [data]
    while stack:
        node = stack.pop()
        found.append(node)
        children = node.values() if isinstance(node, dict) else node
        stack.extend(c for c in children if isinstance(c, dict | list))
    return found


@st.composite
def changed(draw, message: dict) -> bytes:
    """`message` with one hostile change, made in the parsed data or in its bytes."""
    how = draw(st.sampled_from(["set", "drop", "add", "copy", "copy", "copy", "twice", "bytes",
                                "space", "escape"]))  # fmt: skip
    targets = [c for c in _containers(message) if c]
    target = draw(st.sampled_from(targets)) if targets else message
    if how == "copy":  # one entry's value in another's place (a SKU twice, part = parts ...)
        keys = sorted(target) if isinstance(target, dict) else range(len(target))
        source, to = draw(st.permutations(list(keys)))[:2] if len(keys) > 1 else (keys[0],) * 2
        target[to] = json.loads(json.dumps(target[source]))
    elif how in ("set", "drop", "add") and isinstance(target, dict):
        key = draw(st.sampled_from(sorted(target)))
        if how == "set":
            target[key] = draw(hostile_values)
        elif how == "drop":
            del target[key]
        else:
            target[draw(st.text(min_size=1, max_size=8))] = draw(hostile_values)
    elif how in ("set", "drop") and isinstance(target, list):
        at = draw(st.integers(0, len(target) - 1))
        if how == "set":
            target[at] = draw(hostile_values)
        else:
            del target[at]
    raw = encode(message)
    if how == "twice":  # a key given twice: the first copy hides behind the second
        text = raw.decode()
        keys = [k for c in _containers(message) if isinstance(c, dict) for k in c]
        key = json.dumps(draw(st.sampled_from(keys)) if keys else "v")
        value = json.dumps(draw(hostile_values))
        at = draw(st.sampled_from([i + 1 for i, ch in enumerate(text) if ch == "{"]))
        raw = (text[:at] + f"{key}:{value}," + text[at:]).encode()
    elif how == "bytes":
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    elif how == "space":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b" ", b"\n", b"\t"])) + raw[at:]
    elif how == "escape":  # a letter written as \\u00XX: the same string, other bytes
        letters = [i for i, b in enumerate(raw) if chr(b).isalpha()]
        if letters:
            at = draw(st.sampled_from(letters))
            raw = raw[:at] + f"\\u{raw[at]:04x}".encode() + raw[at + 1 :]
    return raw


# ------------------------------------------------------------------ the oracle


def same(fast, careful, raw: bytes) -> None:
    """The fast path declines, or gives exactly what the careful parser gives; where
    the careful parser refuses, the fast path has declined."""
    try:
        expected = careful(raw, DEVICE, NOW, TOLERANCE)
    except PayloadError:
        assert fast(raw, DEVICE, NOW, TOLERANCE) is None, raw
        return
    got = fast(raw, DEVICE, NOW, TOLERANCE)
    if got is not None:
        assert repr(got) == repr(expected), raw  # repr: Decimal digits and dict order too
        if isinstance(got, StockEvent):
            assert got.digest == expected.digest


@SETTINGS
@given(stock_events())
def test_a_kiosks_stock_event_takes_the_fast_path_and_agrees(event):
    raw = encode(event)
    same(fast_stock_event, careful_stock_event, raw)
    try:
        careful_stock_event(raw, DEVICE, NOW, TOLERANCE)
    except PayloadError:
        return  # a time off the window (hypothesis made it): refused, as by the oracle
    assert fast_stock_event(raw, DEVICE, NOW, TOLERANCE) is not None


@SETTINGS
@given(st.data(), stock_events())
def test_a_changed_stock_event_gets_the_careful_parsers_answer(data, event):
    same(fast_stock_event, careful_stock_event, data.draw(changed(event)))


@SETTINGS
@given(journals())
def test_a_kiosks_journal_takes_the_fast_path_unless_it_is_odd_and_agrees(message):
    raw = encode(message)
    same(fast_journal, careful_journal, raw)
    odd = any(
        a in ("1000000000000", "-1000000000000.000000", "9999999999999", "00.10", "-0")
        for c in _containers(message)
        if isinstance(c, dict)
        for a in c.values()
    )
    try:
        careful_journal(raw, DEVICE, NOW, TOLERANCE)
    except PayloadError:
        return
    assert odd or fast_journal(raw, DEVICE, NOW, TOLERANCE) is not None


@SETTINGS
@given(st.data(), journals())
def test_a_changed_journal_gets_the_careful_parsers_answer(data, message):
    same(fast_journal, careful_journal, data.draw(changed(message)))


# ------------------------------------------------------------------ what the kiosks send


def test_every_payload_of_a_real_ledger_takes_the_fast_path(tmp_path):
    path = make_ledger(tmp_path / "till.db", DEVICE, 30)
    with sqlite3.connect(path) as db:
        events = [p.encode() for (p,) in db.execute("SELECT payload FROM outbox")]
        parts = [p.encode() for (p,) in db.execute("SELECT payload FROM journal_outbox")]
    now = datetime.now(UTC)
    assert len(events) == 31 and len(parts) == 30
    for raw in events:
        fast = fast_stock_event(raw, DEVICE, now, TOLERANCE)
        assert repr(fast) == repr(careful_stock_event(raw, DEVICE, now, TOLERANCE))
    for raw in parts:
        fast = fast_journal(raw, DEVICE, now, TOLERANCE)
        assert repr(fast) == repr(careful_journal(raw, DEVICE, now, TOLERANCE))


# ------------------------------------------------------------------ keys given twice


def good_event() -> dict:
    return {"v": 1, "device": DEVICE, "seq": 7, "id": f"{DEVICE}:7", "ts": stamp(NOW),
            "kind": "sale", "txn": "till-01-000007", "moves": [{"sku": "PEN", "delta": -1}],
            "clock": "synced"}  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        # msgspec alone would take the last "delta" (-1) and the sale would look harmless
        (encode(good_event()).replace(b'"delta":-1', b'"delta":-900,"delta":-1'), "delta"),
        (encode(good_event()).replace(b'{"v":1,', b'{"v":1,"seq":8,'), "seq"),
        (encode(good_event()).replace(b',"clock"', b',"kind":"count","clock"'), "kind"),
        (encode(good_event()).replace(b'"sku":"PEN"', b'"sku":"PEN","sku":"PEN"'), "sku"),
    ],
)
def test_a_key_given_twice_in_a_well_formed_event_is_refused(raw, key):
    assert json.loads(raw)  # well-formed JSON
    with pytest.raises(PayloadError, match=f"key '{key}' appears twice"):
        parse_stock_event(raw, DEVICE, NOW)


def test_a_key_given_twice_in_a_well_formed_journal_is_refused():
    message = {"v": 1, "device": DEVICE, "seq": 3, "parts": 2, "txn": "t-3", "kind": "sale",
               "ts": stamp(NOW), "clock": "synced", "part": 2,
               "lines": [{"sku": "PEN", "qty": "1", "net": "1.25", "total": "1.49",
                          "discount": "0.00"}]}  # fmt: skip
    raw = encode(message)
    assert parse_journal(raw, DEVICE, NOW).lines[0].total == Decimal("1.49")
    with pytest.raises(PayloadError, match="key 'total' appears twice"):
        parse_journal(raw.replace(b'"total":"1.49"', b'"total":"1e9","total":"1.49"'), DEVICE, NOW)


@example(NOW)
@example(datetime(999, 1, 1, tzinfo=UTC))
@given(st.datetimes(timezones=st.none() | st.sampled_from([UTC, timezone(timedelta(hours=2))])))
def test_times_are_written_as_strftime_wrote_them(moment):
    assert topics.ts_text(moment) == moment.strftime(topics.TS_FORMAT)


@given(
    st.builds(
        StockEvent,
        device=st.text(max_size=8),
        seq=st.integers(),
        ts=st.datetimes(timezones=st.just(UTC)),
        kind=st.text(max_size=8),
        txn=st.text(max_size=8),
        moves=st.lists(st.tuples(st.text(max_size=5), st.integers())).map(tuple),
        counted=st.none() | st.dictionaries(st.text(max_size=5), st.integers()),
        counted_at=st.none()
        | st.dictionaries(st.text(max_size=5), st.datetimes(timezones=st.just(UTC))),
        clock=st.sampled_from([None, "synced", "unsynced"]),
    )
)
@example(StockEvent("d", 1, NOW, "sale", "\x7f", ()))  # DEL: json.dumps escapes it
@example(StockEvent("d", 1, NOW, "sale", 'a"b\\\u2028\x00ü', (("x,y", 1),)))
def test_an_events_digest_is_the_one_stored_before(event):
    """Digests kept in a store must still match the same event sent again (a resync)."""
    canonical = [
        event.device, event.seq, event.ts.strftime(topics.TS_FORMAT), event.kind, event.txn,
        [list(move) for move in event.moves], sorted((event.counted or {}).items()),
        sorted((k, v.strftime(topics.TS_FORMAT)) for k, v in (event.counted_at or {}).items()),
        event.clock,
    ]  # fmt: skip
    before = hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()
    assert event.digest == before


# ------------------------------------------------------------------ the rules in Python
# Well-formed payloads within every Struct bound that a rule checked after decoding still
# refuses: the fast path declines each, and the careful parser words the refusal.


def good_journal(part: int = 1, parts: int = 1) -> dict:
    message = {"v": 1, "device": DEVICE, "seq": 3, "parts": parts, "txn": "t-3", "kind": "sale",
               "ts": stamp(NOW), "clock": "synced", "part": part}  # fmt: skip
    totals = {"currency": "EUR", "net": "1.25", "tax": "0.24", "total": "1.49",
              "discount": "0.00", "rounding": "0.00", "change": "0.51",
              "taxes": [{"code": "A", "rate": "0.19", "net": "1.25", "tax": "0.24"}],
              "tenders": [{"kind": "cash", "amount": "2.00"}]}  # fmt: skip
    line = {"sku": "PEN", "qty": "1", "net": "1.25", "total": "1.49", "discount": "0.00"}
    return message | totals | {"lines": [line]} if part == 1 else message | {"lines": [line]}


def count_event() -> dict:
    return good_event() | {"kind": "count", "counted": {"PEN": 5, "INK": 2},
                           "counted_at": {"PEN": stamp(NOW), "INK": stamp(NOW)}}  # fmt: skip


LATE = stamp(NOW + timedelta(seconds=TOLERANCE + 1))
EVENT_RULES = {
    "a SKU twice": (good_event() | {"moves": [{"sku": "PEN", "delta": -1}] * 2},
                    "sku PEN appears twice in moves"),
    "another kiosk's device": (good_event() | {"device": "till-02", "id": "till-02:7"},
                               "published on 'till-01''s topic"),
    "an id off its seq": (good_event() | {"id": "till-01:8"}, "id must be <device>:<seq>"),
    "the future": (good_event() | {"ts": LATE}, "is in the future"),
    "before 2020": (good_event() | {"ts": "2019-12-31T23:59:59.999999Z"}, "is before 2020"),
    "no zone": (good_event() | {"ts": "2026-12-07T11:00:00.000000"}, "must carry a time zone"),
    "a count without counted": ({k: v for k, v in count_event().items() if k != "counted"},
                                "a count needs counted and counted_at"),
    "a counted SKU without its time": (count_event() | {"counted_at": {"PEN": stamp(NOW)}},
                                       "counted_at of INK must be an ISO-8601"),
    "a counted time in the future": (count_event() | {"counted_at": {"PEN": LATE, "INK": LATE}},
                                     "counted_at of PEN .* is in the future"),
}  # fmt: skip
JOURNAL_RULES = {
    "part past parts": (good_journal(3, 2), "part 3 is out of range 1..2"),
    "totals in part 2": (good_journal(2, 2) | {"currency": "EUR"}, "unexpected field 'currency'"),
    "taxes in part 2": (good_journal(2, 2) | {"taxes": []}, "unexpected field 'taxes'"),
    "part 1 without a total": ({k: v for k, v in good_journal().items() if k != "change"},
                               "part 1 must carry change"),
    "a line twice": (good_journal() | {"lines": good_journal()["lines"] * 2},
                     "sku PEN appears twice in lines"),
    "another kiosk's device": (good_journal() | {"device": "till-02"},
                               "device must be the topic's device id"),
    "the future": (good_journal() | {"ts": LATE}, "is in the future"),
}  # fmt: skip


@pytest.mark.parametrize("what", EVENT_RULES)
def test_a_well_formed_event_off_a_rule_is_refused_by_the_careful_parser(what):
    message, reason = EVENT_RULES[what]
    raw = encode(message)
    assert fast_stock_event(raw, DEVICE, NOW, TOLERANCE) is None
    with pytest.raises(PayloadError, match=reason):
        parse_stock_event(raw, DEVICE, NOW, TOLERANCE)


@pytest.mark.parametrize("what", JOURNAL_RULES)
def test_a_well_formed_journal_off_a_rule_is_refused_by_the_careful_parser(what):
    message, reason = JOURNAL_RULES[what]
    raw = encode(message)
    assert fast_journal(raw, DEVICE, NOW, TOLERANCE) is None
    with pytest.raises(PayloadError, match=reason):
        parse_journal(raw, DEVICE, NOW, TOLERANCE)


@pytest.mark.parametrize(
    "message",
    [good_event(), count_event(), good_journal(), good_journal(2, 2)],
    ids=["event", "count", "journal", "journal part 2"],
)
def test_the_good_ones_take_the_fast_path(message):
    raw = encode(message)
    fast = fast_journal if "parts" in message else fast_stock_event
    careful = careful_journal if "parts" in message else careful_stock_event
    assert repr(fast(raw, DEVICE, NOW, TOLERANCE)) == repr(careful(raw, DEVICE, NOW, TOLERANCE))


def test_an_unsynchronised_clocks_time_off_the_window_is_placed_now_by_both_paths():
    for message in (good_event(), count_event(), good_journal()):
        message |= {"ts": LATE, "clock": "unsynced"}
        if "counted_at" in message:
            message["counted_at"] = {"PEN": "2001-01-01T00:00:00.000000Z", "INK": stamp(NOW)}
        raw = encode(message)
        fast = fast_journal if "parts" in message else fast_stock_event
        careful = careful_journal if "parts" in message else careful_stock_event
        got = fast(raw, DEVICE, NOW, TOLERANCE)
        assert got is not None and got.ts == NOW
        assert repr(got) == repr(careful(raw, DEVICE, NOW, TOLERANCE))


# ------------------------------------------------------------------ stored as before

decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.from_regex(r"\A-?[0-9]{1,13}(\.[0-9]{1,6})?\Z").map(Decimal),
)


@given(decimals)
def test_a_journals_amounts_are_stored_as_format_f_wrote_them(amount):
    assert journal_store._text(amount) == format(amount, "f")


@given(st.lists(st.lists(st.text(max_size=8) | decimals.map(str), min_size=1, max_size=4)))
@example([["cash", "500.00"], ["card", "1.50"]])
@example([["a,b", "1"], ["c", "d:e"]])
def test_a_journals_tenders_and_taxes_are_stored_as_json_dumps_wrote_them(rows):
    assert journal_store._json(rows) == json.dumps(rows)


@pytest.mark.parametrize("count", [0, 1, 248, 249, 250, 499, 500, 1001])
def test_rows_go_in_many_a_statement_and_all_arrive_in_order(tmp_path, count):
    from kiosk.mqtt import store  # noqa: PLC0415

    db = store.open_store(str(tmp_path / "controller.db"))
    rows = [{"device": "d", "seq": n, "part": 1, "digest": f"{n:064x}"} for n in range(count)]
    with db.atomic():
        store.insert_rows(store.JournalPart, rows)  # 4 columns: 249 rows a statement
    got = store.JournalPart.select(store.JournalPart.seq, store.JournalPart.digest).tuples()
    assert list(got.order_by(store.JournalPart.id)) == [(r["seq"], r["digest"]) for r in rows]
    db.close()
