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
from typing import Any

from kiosk.mqtt.topics import (
    _ID,
    _TXN,
    CLOCK_STATES,
    FUTURE_TOLERANCE_S,
    MAX_SEQ,
    TS_FLOOR,
    TS_FORMAT,
    PayloadError,
    _int,
    _load,
    _sku,
    parse_ts,
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
    (a datetime, default this machine's clock) plus the tolerance in seconds."""
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


def ts_text(moment: datetime) -> str:
    return moment.strftime(TS_FORMAT)
