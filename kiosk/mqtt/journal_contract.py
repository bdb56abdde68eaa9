"""The transaction journal on MQTT: `<root>/kiosk/<device>/journal` (kiosk.ledger.journal
makes the messages). Like every contract parser, anything off its bounds is refused
with a one-line PayloadError and dead-lettered by the controller.

One message per part of a money transaction; (device, seq, part) is its identity,
where seq is the transaction's stock event. Part 1 carries the totals, taxes and
tenders; every part carries up to MAX_PART_LINES lines summed per SKU and condition.
Amounts and quantities are decimal strings (never floats), each bounded by the
ledger's own limit (kiosk.ledger.migrations.MAX_AMOUNT), so no sum can overflow.
"""

from __future__ import annotations

import hashlib
import re
from collections import namedtuple
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from kiosk.mqtt.topics import (
    _ID,
    _TXN,
    CLOCK_STATES,
    FUTURE_TOLERANCE_S,
    MAX_SEQ,
    TS_FLOOR,
    PayloadError,
    _anchored,
    _int,
    _load,
    _sku,
    _WireId,
    _WireSeq,
    _WireSku,
    _WireTs,
    _WireTxn,
    fast_when,
    parse_ts,
    vouched,
)

JOURNAL_KINDS = ("sale", "return", "void", "exchange")
MAX_PARTS = 20  # 20 x 200 lines: more than the 1,000 SKUs x 2 conditions a sale can hold
MAX_PART_LINES = 200
MAX_TENDERS = 16
MAX_TAXES = 16
MAX_AMOUNT = Decimal(10) ** 12  # the ledger's bound on any posted amount or quantity
CONDITIONS = ("resaleable", "damaged")
_DECIMAL = re.compile(r"-?\d{1,13}(\.\d{1,6})?")
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_LINE_KEYS = {"sku", "qty", "net", "total", "discount"}
_TOP_KEYS = {"v", "device", "seq", "part", "parts", "txn", "kind", "ts", "clock", "lines"}
_TOTAL_KEYS = {"currency", "net", "tax", "total", "discount", "rounding", "change"}


# A line summed per SKU and condition: quantity, net, total and discount as Decimals.
JournalLine = namedtuple("JournalLine", "sku qty net total discount condition", defaults=[None])


@dataclass(frozen=True)
class Journal:
    device: str
    seq: int
    part: int
    parts: int
    txn: str
    kind: str
    ts: datetime
    clock: str | None
    lines: tuple[JournalLine, ...]
    totals: dict[str, Any] | None = None  # part 1: currency, net, tax, total, ... as Decimals
    taxes: tuple[tuple[str, Decimal, Decimal, Decimal], ...] = ()  # code, rate, net, tax
    tenders: tuple[tuple[str, Decimal], ...] = ()  # kind, amount (net of nothing)

    @property
    def key(self) -> tuple[str, int, int]:
        return self.device, self.seq, self.part

    digest: str = ""  # sha256 of the message as sent (kiosks resend their outbox's bytes)


def _amount(value: Any, what: str, of: str = "") -> Decimal:
    """A bounded decimal string as Decimal; `what` (and `of`) name it in a refusal (the
    words are only put together then: this runs for every amount of every line)."""
    if type(value) is not str or not _DECIMAL.fullmatch(value):
        raise PayloadError(f"{what}{' of ' if of else ''}{of} must be a decimal string")
    amount = Decimal(value)
    if abs(amount) > MAX_AMOUNT:
        raise PayloadError(f"{what}{' of ' if of else ''}{of} {value} is out of range")
    return amount


def _object(value: Any, keys: set[str], optional: set[str], what: str) -> dict:
    if not isinstance(value, dict) or not keys <= set(value) <= keys | optional:
        raise PayloadError(f"{what} must be an object of {', '.join(sorted(keys))}")
    return value


def _list(data: dict, key: str, limit: int) -> list:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise PayloadError(f"{key} must be a list")
    if len(value) > limit:
        raise PayloadError(f"more than {limit} {key}")
    return value


def parse_journal(raw: bytes, topic_device: str, now=None, future_tolerance_s=FUTURE_TOLERANCE_S):
    """One Journal within every bound, or PayloadError; times are checked against `now`
    (a datetime, default this machine's clock) plus the tolerance in seconds.

    A kiosk's well-formed journal takes the fast path (fast_journal, as stock events do:
    kiosk.mqtt.topics); anything it cannot vouch for goes through the careful parser."""
    now = now or datetime.now(UTC)
    journal = fast_journal(raw, topic_device, now, future_tolerance_s)
    if journal is not None:
        return journal
    return careful_journal(raw, topic_device, now, future_tolerance_s)


# ------------------------------------------------------------------ the fast path
# As for stock events (kiosk.mqtt.topics, "the fast path"): a Struct in the kiosk's key
# order (kiosk/ledger/journal.py) with the same bounds, vouched for only when the bytes
# are exactly its re-encoding. Amounts take a stricter pattern than _DECIMAL: ASCII
# digits and at most 12 before the point, so every one is below MAX_AMOUNT without a
# comparison (10^12 itself, or 13 digits, go to the careful parser).
_WireAmount = Annotated[str, msgspec.Meta(pattern=r"^-?[0-9]{1,12}(?:\.[0-9]{1,6})?\Z")]
_WireCode = Annotated[str, msgspec.Meta(pattern=_anchored(_CODE))]
_WirePart = Annotated[int, msgspec.Meta(ge=1, le=MAX_PARTS)]


class _WireLine(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    sku: _WireSku
    qty: _WireAmount
    net: _WireAmount
    total: _WireAmount
    discount: _WireAmount
    condition: Literal[CONDITIONS] | None = None


class _WireTax(msgspec.Struct, forbid_unknown_fields=True):
    code: _WireCode
    rate: _WireAmount
    net: _WireAmount
    tax: _WireAmount


class _WireTender(msgspec.Struct, forbid_unknown_fields=True):
    kind: _WireCode
    amount: _WireAmount


class _WireJournal(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """A journal part in the kiosk's key order; part 1's totals default to absent."""

    v: Literal[1]
    device: _WireId
    seq: _WireSeq
    parts: _WirePart
    txn: _WireTxn
    kind: Literal[JOURNAL_KINDS]
    ts: _WireTs
    clock: Literal[CLOCK_STATES] | None
    part: _WirePart
    currency: Annotated[str, msgspec.Meta(pattern=_anchored(_CURRENCY))] | None = None
    net: _WireAmount | None = None
    tax: _WireAmount | None = None
    total: _WireAmount | None = None
    discount: _WireAmount | None = None
    rounding: _WireAmount | None = None
    change: _WireAmount | None = None
    taxes: Annotated[list[_WireTax], msgspec.Meta(max_length=MAX_TAXES)] | None = None
    tenders: Annotated[list[_WireTender], msgspec.Meta(max_length=MAX_TENDERS)] | None = None
    lines: Annotated[list[_WireLine], msgspec.Meta(max_length=MAX_PART_LINES)]


_JOURNAL_DECODER = msgspec.json.Decoder(_WireJournal)
_TOTALS = ("change", "discount", "net", "rounding", "tax", "total")  # sorted, as careful


def fast_journal(raw: Any, topic_device: str, now: datetime, future_tolerance_s: float):
    """The Journal parse_journal makes of `raw`, when the fast path vouches for it;
    None: ask the careful parser (which may still accept it)."""
    wire = vouched(_JOURNAL_DECODER, raw)
    if wire is None or wire.device != topic_device or wire.part > wire.parts:
        return None
    moment = fast_when(wire.ts, wire.clock, now, future_tolerance_s)
    if moment is None:
        return None
    lines = tuple(
        [
            JournalLine(
                row.sku,
                Decimal(row.qty),
                Decimal(row.net),
                Decimal(row.total),
                Decimal(row.discount),
                row.condition,
            )
            for row in wire.lines
        ]
    )
    if len({(line.sku, line.condition) for line in lines}) != len(lines):
        return None
    totals = None
    taxes: tuple = ()
    tenders: tuple = ()
    amounts = [getattr(wire, key) for key in _TOTALS]
    if wire.part == 1:
        if wire.currency is None or None in amounts:
            return None
        totals = {"currency": wire.currency}
        totals |= {key: Decimal(amount) for key, amount in zip(_TOTALS, amounts, strict=True)}
        taxes = tuple(
            [(t.code, Decimal(t.rate), Decimal(t.net), Decimal(t.tax)) for t in wire.taxes or ()]
        )
        tenders = tuple([(t.kind, Decimal(t.amount)) for t in wire.tenders or ()])
    elif (wire.currency, wire.taxes, wire.tenders, *amounts) != (None,) * (3 + len(_TOTALS)):
        return None  # only part 1 carries the totals
    digest = hashlib.sha256(raw).hexdigest()
    return Journal(wire.device, wire.seq, wire.part, wire.parts, wire.txn, wire.kind, moment,
                   wire.clock, lines, totals, taxes, tenders, digest)  # fmt: skip


def careful_journal(raw: bytes, topic_device: str, now=None, future_tolerance_s=FUTURE_TOLERANCE_S):
    """parse_journal's careful parser: every rule checked one by one, so a refusal names
    the first thing wrong."""
    now = now or datetime.now(UTC)
    data = _load(raw)
    device = data.get("device")
    if not isinstance(device, str) or not _ID.fullmatch(device) or device != topic_device:
        raise PayloadError("device must be the topic's device id")
    seq = _int(data, "seq", 1, MAX_SEQ)
    parts = _int(data, "parts", 1, MAX_PARTS)
    part = _int(data, "part", 1, parts)
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in JOURNAL_KINDS:
        raise PayloadError(f"unknown journal kind {str(kind)[:20]!r}")
    txn = data.get("txn")
    if not isinstance(txn, str) or not _TXN.fullmatch(txn):
        raise PayloadError("txn must be a receipt number")
    clock = data.get("clock")
    if clock is not None and clock not in CLOCK_STATES:
        raise PayloadError(f"clock must be one of {', '.join(CLOCK_STATES)}")
    moment = parse_ts(data.get("ts"), "ts", window=False)
    late = now + timedelta(seconds=future_tolerance_s)
    if clock != "unsynced":
        moment = parse_ts(data.get("ts"), "ts", now, future_tolerance_s)
    elif not TS_FLOOR <= moment <= late:
        moment = now  # an unsynchronised clock's time means nothing outside the window
    first = part == 1
    allowed = _TOP_KEYS | ((_TOTAL_KEYS | {"taxes", "tenders"}) if first else set())
    unknown = set(data) - allowed
    if unknown:
        raise PayloadError(f"unexpected field {sorted(unknown)[0][:20]!r}")
    lines = []
    seen: set[tuple[str, str | None]] = set()
    for row in _list(data, "lines", MAX_PART_LINES):
        row = _object(row, _LINE_KEYS, {"condition"}, "each line")
        condition = row.get("condition")
        if condition is not None and condition not in CONDITIONS:
            raise PayloadError(f"condition must be one of {', '.join(CONDITIONS)}")
        sku = _sku(row["sku"])
        if (sku, condition) in seen:
            raise PayloadError(f"sku {sku} appears twice in lines")
        seen.add((sku, condition))
        lines.append(
            JournalLine(
                sku,
                _amount(row["qty"], "qty", sku),
                _amount(row["net"], "net", sku),
                _amount(row["total"], "total", sku),
                _amount(row["discount"], "discount", sku),
                condition,
            )
        )
    totals = None
    taxes: list[tuple[str, Decimal, Decimal, Decimal]] = []
    tenders: list[tuple[str, Decimal]] = []
    if first:
        missing = _TOTAL_KEYS - set(data)
        if missing:
            raise PayloadError(f"part 1 must carry {sorted(missing)[0]}")
        currency = data["currency"]
        if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
            raise PayloadError("currency must be an ISO 4217 code")
        totals = {"currency": currency}
        totals |= {k: _amount(data[k], k) for k in sorted(_TOTAL_KEYS - {"currency"})}
        for row in _list(data, "taxes", MAX_TAXES):
            row = _object(row, {"code", "rate", "net", "tax"}, set(), "each tax")
            code = row["code"]
            if not isinstance(code, str) or not _CODE.fullmatch(code):
                raise PayloadError("tax code must be 1-16 letters or digits")
            rate, net, tax = (_amount(row[k], k, f"tax {code}") for k in ("rate", "net", "tax"))
            taxes.append((code, rate, net, tax))
        for row in _list(data, "tenders", MAX_TENDERS):
            row = _object(row, {"kind", "amount"}, set(), "each tender")
            kind_ = row["kind"]
            if not isinstance(kind_, str) or not _CODE.fullmatch(kind_):
                raise PayloadError("tender kind must be 1-16 letters or digits")
            tenders.append((kind_, _amount(row["amount"], "amount", kind_)))
    digest = hashlib.sha256(raw).hexdigest()
    return Journal(device, seq, part, parts, txn, kind, moment, clock, tuple(lines), totals,
                   tuple(taxes), tuple(tenders), digest)  # fmt: skip
