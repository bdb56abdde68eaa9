"""The one place that knows MQTT topic names and payload shapes (ARCHITECTURE.md section 4).

Parsers refuse anything off-contract with a one-line `PayloadError`, so a malformed
or hostile message is dead-lettered and never changes a count.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Annotated, Any, Literal

import msgspec

from kiosk import numbers

VERSION = 1

# ------------------------------------------------------------------ bounds
# Every number a kiosk can put in a message is bounded here, and only here: the
# controller refuses (dead-letters) anything outside, so no value can overflow the
# store (SQLite's 64-bit integers, PostgreSQL's 32-bit INTEGER columns) or a datetime.
# The quantity and size limits are kiosk.numbers' own: a kiosk never posts a
# transaction whose event would be refused here (kiosk/ledger/posting.py checks).
MAX_PAYLOAD = numbers.MAX_EVENT_BYTES  # bytes; the broker's max_packet_size; larger is refused
MAX_DEPTH = 6  # nesting of [ and {: a stock event needs 3 (event > moves > move)
MAX_INT_DIGITS = 19  # any JSON integer literal longer than this is refused while parsing
MAX_SEQ = 2**31 - 1  # a kiosk's seq: 2,147,483,647 (PostgreSQL INTEGER); 10,000 a day
#                      lasts 588 years
MAX_MOVE_QTY = numbers.MAX_STOCK_QTY  # units one stock event may move for one SKU, either way
MAX_COUNT_QTY = numbers.MAX_STOCK_QTY  # units a count may report for one SKU
MAX_LINES = numbers.MAX_EVENT_LINES  # moves, or counted SKUs, in one event
MAX_OUTBOX = 100_000_000  # a kiosk's reported outbox depth
MAX_TEXT = 64  # characters of a receipt number (txn)
TS_FLOOR = datetime(2020, 1, 1, tzinfo=UTC)  # nothing a kiosk did is older than this
FUTURE_TOLERANCE_S = 300.0  # default of [controller] future_tolerance_s: clocks drift
MAX_TS_TEXT = 40  # characters of a time stamp
CLOCK_STATES = ("synced", "unsynced")  # optional "clock" field: the kiosk's clock when it
#                                        made the event (absent: not said, old firmware)

KINDS = ("sale", "return", "void", "exchange", "adjust", "count", "receive", "kit_build")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,31}")
_TXN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:/-]{{0,{MAX_TEXT - 1}}}")
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_SPECIAL = re.compile(rb'[\[\]{}"\\]')  # what the depth scan of a broken payload looks at
_QUOTE, _BACKSLASH, _OPENERS, _CLOSERS = ord('"'), ord("\\"), b"[{", b"]}"
_ENCODER = msgspec.json.Encoder()


class PayloadError(ValueError):
    """A message that is not what the contract says; the text says what is wrong."""


@dataclass(frozen=True)
class Topics:
    root: str  # e.g. shop/store-042

    def kiosk_status(self, device: str) -> str:
        return f"{self.root}/kiosk/{device}/status"

    def kiosk_stock(self, device: str) -> str:
        return f"{self.root}/kiosk/{device}/stock"

    def kiosk_journal(self, device: str) -> str:
        """A kiosk's transaction journal (kiosk.mqtt.journal_contract)."""
        return f"{self.root}/kiosk/{device}/journal"

    @property
    def all_kiosk_journal(self) -> str:
        return f"{self.root}/kiosk/+/journal"

    def kiosk_resync(self, device: str) -> str:
        return f"{self.root}/kiosk/{device}/resync"

    def stock(self, sku: str) -> str:
        return f"{self.root}/stock/{sku}"

    @property
    def controller_status(self) -> str:
        return f"{self.root}/controller/status"

    @property
    def all_kiosk_stock(self) -> str:
        return f"{self.root}/kiosk/+/stock"

    @property
    def all_kiosk_status(self) -> str:
        return f"{self.root}/kiosk/+/status"

    @property
    def all_stock(self) -> str:
        return f"{self.root}/stock/#"

    # The item master (README, "Item master distribution"): one retained announcement
    # of the current version; each kiosk asks on its own topic and gets its transfer
    # on its own topic, so a kiosk only ever reads what is meant for it.
    @property
    def catalog_current(self) -> str:
        return f"{self.root}/catalog/current"

    def catalog_get(self, device: str) -> str:
        return f"{self.root}/kiosk/{device}/catalog/get"

    def catalog_data(self, device: str) -> str:
        return f"{self.root}/kiosk/{device}/catalog/data"

    @property
    def all_catalog_get(self) -> str:
        return f"{self.root}/kiosk/+/catalog/get"

    def catalog_acl(self) -> list[str]:
        """The broker ACL lines the catalog topics need (kiosk.mqtt.broker renders the rest)."""
        return [
            f"pattern write {self.root}/kiosk/%u/catalog/get",
            f"pattern read {self.root}/kiosk/%u/catalog/data",
            f"pattern read {self.root}/catalog/current",
        ]

    def device_of(self, topic: str) -> str | None:
        """The device id in <root>/kiosk/<device>/..., or None."""
        return self.split_kiosk_topic(topic)[0]

    def split_kiosk_topic(self, topic: str) -> tuple[str | None, str]:
        """(device, what) of <root>/kiosk/<device>/<what>: what is "stock", "journal",
        "status", "catalog/get" ... (None, "") when it is not a kiosk's topic. One split
        instead of building each topic name to compare (the controller asks per message)."""
        prefix = f"{self.root}/kiosk/"
        if not topic.startswith(prefix):
            return None, ""
        device, _, what = topic[len(prefix) :].partition("/")
        return (device, what) if _ID.fullmatch(device) else (None, "")


def encode(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def ts_now() -> str:
    return ts_text(datetime.now(UTC))


def ts_text(moment: datetime) -> str:
    """`moment.strftime(TS_FORMAT)`, the same text: a UTC time through isoformat, which
    costs a tenth of strftime (the controller writes several per message)."""
    if moment.tzinfo is UTC and moment.year >= 1000:  # strftime does not pad %Y below
        return moment.isoformat(timespec="microseconds")[:-6] + "Z"
    return moment.strftime(TS_FORMAT)


def parse_ts(
    value: Any,
    what: str = "ts",
    now: datetime | None = None,
    future_tolerance_s: float = FUTURE_TOLERANCE_S,
    window: bool = True,
) -> datetime:
    """A UTC time no older than TS_FLOOR and, given `now`, no later than now plus the
    tolerance (a kiosk's clock can be hours or years off: see README, design); with
    `window=False` any representable time."""
    if not isinstance(value, str) or len(value) > MAX_TS_TEXT:
        raise PayloadError(f"{what} must be an ISO-8601 UTC string")
    moment = _iso_time(value, what)
    if not window:
        return moment
    if moment < TS_FLOOR:
        raise PayloadError(f"{what} {value!r} is before {TS_FLOOR:%Y-%m-%d}")
    if now is not None and moment > now + timedelta(seconds=future_tolerance_s):
        raise PayloadError(
            f"{what} {value!r} is in the future (more than {future_tolerance_s:g} s "
            "ahead of the controller's clock)"
        )
    return moment


def _iso_time(value: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{what} {value!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise PayloadError(f"{what} must carry a time zone")
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise PayloadError(f"{what} {value!r} is out of range") from None


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise PayloadError(f"integer of {len(text)} digits is out of range")
    return int(text)


def _parse_constant(text: str) -> Any:
    raise PayloadError(f"{text} is not a number")


def _check_depth(data: Any) -> None:
    """Refuse nesting deeper than MAX_DEPTH, on the parsed document and without
    recursing (json.loads itself turns a document nested past Python's recursion limit
    into RecursionError, refused in _load): containers only, so a flat payload of many
    strings costs nothing (a scan of the raw bytes cost more than parsing them)."""
    stack = [(data, 1)] if isinstance(data, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise PayloadError(f"JSON nested deeper than {MAX_DEPTH}")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _too_deep(raw: bytes) -> bool:
    """Is a document that does not parse nested deeper than MAX_DEPTH before it breaks?
    (So a deep poison is refused for its depth, whatever else is wrong with it.) One
    left-to-right pass over the bytes that matter: linear in the payload, whatever its
    quotes and escapes (a regex over strings was quadratic on unterminated escaped
    quotes). Only refused payloads pay for it."""
    depth, in_string, escaped = 0, False, -1
    for found in _SPECIAL.finditer(raw):
        at = found.start()
        char = raw[at]
        if at == escaped:
            continue
        if in_string:
            if char == _BACKSLASH:
                escaped = at + 1
            elif char == _QUOTE:
                in_string = False
        elif char == _QUOTE:
            in_string = True
        elif char in _OPENERS:
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in _CLOSERS:
            depth -= 1
    return False


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object; a key given twice is ambiguous (which one was meant?): refused."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise PayloadError(f"key {twice[:40]!r} appears twice")
    return data


def _load(raw: bytes) -> dict:
    if not isinstance(raw, bytes | bytearray):
        raise PayloadError("payload must be bytes")
    if len(raw) > MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(raw)} bytes is over the {MAX_PAYLOAD} limit")
    raw = bytes(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"not UTF-8: {exc}") from None
    try:
        data = json.loads(
            text,
            parse_int=_parse_int,
            parse_constant=_parse_constant,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        if _too_deep(raw):
            raise PayloadError(f"JSON nested deeper than {MAX_DEPTH}") from None
        raise PayloadError(f"not JSON: {exc}") from None
    except RecursionError:
        raise PayloadError(f"JSON nested deeper than {MAX_DEPTH}") from None
    _check_depth(data)
    if not isinstance(data, dict):
        raise PayloadError("not a JSON object")
    if type(data.get("v")) is not int or data["v"] != VERSION:
        raise PayloadError(f"unsupported schema version {str(data.get('v'))[:20]!r}")
    return data


def _int(data: dict, key: str, minimum: int, maximum: int) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PayloadError(f"{key} must be an integer")
    if not minimum <= value <= maximum:
        raise PayloadError(f"{key} {value} is out of range {minimum}..{maximum}")
    return value


@dataclass(frozen=True)
class StockEvent:
    device: str
    seq: int
    ts: datetime
    kind: str
    txn: str
    moves: tuple[tuple[str, int], ...]
    counted: dict[str, int] | None = None
    counted_at: dict[str, datetime] | None = None
    clock: str | None = None  # "synced", "unsynced", or None when the kiosk did not say

    @property
    def id(self) -> str:
        return f"{self.device}:{self.seq}"

    @cached_property
    def digest(self) -> str:
        """What the event says, canonically: the same (device, seq) arriving again with
        another digest is a conflict, with the same one a harmless duplicate."""
        canonical = [
            self.device,
            self.seq,
            ts_text(self.ts),
            self.kind,
            self.txn,
            self.moves,
            sorted((self.counted or {}).items()),
            sorted((k, ts_text(v)) for k, v in (self.counted_at or {}).items()),
            self.clock,
        ]
        return hashlib.sha256(canonical_json(canonical)).hexdigest()


def canonical_json(value: Any) -> bytes:
    """`json.dumps(value, separators=(",", ":")).encode()`, the same bytes (so digests
    stored before stay valid): msgspec writes them 5x faster, and where its text is
    printable ASCII without a backslash no string needed escaping, so both encoders wrote
    the same (json.dumps escapes DEL and all above; msgspec escapes below the space)."""
    text = _ENCODER.encode(value)
    if text.isascii() and b"\\" not in text and b"\x7f" not in text:
        return text
    return json.dumps(value, separators=(",", ":")).encode()


def _sku(value: Any) -> str:
    if not isinstance(value, str) or not _SKU.fullmatch(value):
        raise PayloadError(f"bad sku {str(value)[:40]!r}")
    return value


def parse_stock_event(
    raw: bytes,
    topic_device: str | None = None,
    now: datetime | None = None,
    future_tolerance_s: float = FUTURE_TOLERANCE_S,
) -> StockEvent:
    """A stock event within every bound above, or PayloadError. Times are checked
    against `now` (default: this machine's clock) plus the tolerance.

    A kiosk's well-formed event takes the fast path (fast_stock_event); anything it
    cannot vouch for goes through the careful parser, which says what is wrong."""
    now = now or datetime.now(UTC)
    event = fast_stock_event(raw, topic_device, now, future_tolerance_s)
    if event is not None:
        return event
    return careful_stock_event(raw, topic_device, now, future_tolerance_s)


# ------------------------------------------------------------------ the fast path
# What a kiosk sends is compact JSON in a fixed key order (json.dumps with separators,
# kiosk/ledger/posting.py). msgspec decodes it in C into a Struct that holds the same
# bounds as the careful parser; the payload is vouched for only if its bytes are exactly
# the re-encoding of what was decoded. Such a payload cannot hide a key given twice
# (msgspec keeps the last one silently), an unknown field, whitespace, an escape, a
# number written another way (1.0, -0, 1e3) or bytes that are not UTF-8, and its nesting
# is the Struct's. The remaining rules (the id, the topic's device, a SKU once, times)
# are checked in Python, as the careful parser does. The fast path only ever accepts:
# whatever it does not vouch for goes to the careful parser, which accepts it or words
# the refusal (tests/test_fast_path.py checks both agree).


def _anchored(pattern: re.Pattern) -> str:
    """A fullmatch pattern for msgspec's Meta, which searches: \\Z, as $ also matches
    before a final newline."""
    return f"^(?:{pattern.pattern})\\Z"


_WireId = Annotated[str, msgspec.Meta(pattern=_anchored(_ID))]
_WireSku = Annotated[str, msgspec.Meta(pattern=_anchored(_SKU))]
_WireTxn = Annotated[str, msgspec.Meta(pattern=_anchored(_TXN))]
_WireTs = Annotated[str, msgspec.Meta(max_length=MAX_TS_TEXT)]
_WireSeq = Annotated[int, msgspec.Meta(ge=1, le=MAX_SEQ)]


class _WireMove(msgspec.Struct, forbid_unknown_fields=True):
    sku: _WireSku
    delta: Annotated[int, msgspec.Meta(ge=-MAX_MOVE_QTY, le=MAX_MOVE_QTY)]


class _WireEvent(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A stock event in the kiosk's key order (fields the kiosk leaves out default)."""

    v: Literal[1]
    device: _WireId
    seq: _WireSeq
    id: str
    ts: _WireTs
    kind: Literal[KINDS]
    txn: _WireTxn
    moves: Annotated[list[_WireMove], msgspec.Meta(max_length=MAX_LINES)]
    clock: Literal[CLOCK_STATES] | None = None
    counted: (
        Annotated[
            dict[_WireSku, Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT_QTY)]],
            msgspec.Meta(max_length=MAX_LINES),
        ]
        | None
    ) = None
    counted_at: dict[str, _WireTs] | None = None


_EVENT_DECODER = msgspec.json.Decoder(_WireEvent)


def vouched(decoder: msgspec.json.Decoder, raw: Any) -> Any:
    """The payload decoded by `decoder`'s Struct, or None when the fast path cannot
    vouch for it (not bytes, too large, off the Struct's bounds, or not exactly the
    re-encoding of what was decoded: see above)."""
    if type(raw) is not bytes or len(raw) > MAX_PAYLOAD:
        return None
    try:
        wire = decoder.decode(raw)
    except (msgspec.MsgspecError, RecursionError):
        return None
    return wire if _ENCODER.encode(wire) == raw else None


def fast_when(
    value: str, clock: str | None, now: datetime, future_tolerance_s: float
) -> datetime | None:
    """A time as the careful parsers place it (see `when` in careful_stock_event),
    or None where they would refuse it."""
    try:
        moment = _iso_time(value, "ts")
    except PayloadError:
        return None
    if TS_FLOOR <= moment <= now + timedelta(seconds=future_tolerance_s):
        return moment
    return now if clock == "unsynced" else None


def fast_stock_event(
    raw: Any, topic_device: str | None, now: datetime, future_tolerance_s: float
) -> StockEvent | None:
    """The event parse_stock_event makes of `raw`, when the fast path vouches for it;
    None: ask the careful parser (which may still accept it)."""
    wire = vouched(_EVENT_DECODER, raw)
    if wire is None:
        return None
    device, seq = wire.device, wire.seq
    if (topic_device is not None and device != topic_device) or wire.id != f"{device}:{seq}":
        return None
    moves = tuple([(move.sku, move.delta) for move in wire.moves])
    if len({sku for sku, _ in moves}) != len(moves):
        return None
    clock = wire.clock
    moment = fast_when(wire.ts, clock, now, future_tolerance_s)
    if moment is None:
        return None
    counted = counted_at = None
    if wire.kind == "count":
        counted, at_raw = wire.counted, wire.counted_at
        if counted is None or at_raw is None:
            return None
        counted_at = {}
        for sku in counted:
            text = at_raw.get(sku)
            at = None if text is None else fast_when(text, clock, now, future_tolerance_s)
            if at is None:
                return None
            counted_at[sku] = at
    return StockEvent(device, seq, moment, wire.kind, wire.txn, moves, counted, counted_at, clock)


def careful_stock_event(
    raw: bytes,
    topic_device: str | None = None,
    now: datetime | None = None,
    future_tolerance_s: float = FUTURE_TOLERANCE_S,
) -> StockEvent:
    """parse_stock_event's careful parser: every rule checked one by one, so a refusal
    names the first thing wrong."""
    now = now or datetime.now(UTC)
    data = _load(raw)
    device = data.get("device")
    if not isinstance(device, str) or not _ID.fullmatch(device):
        raise PayloadError("device must be a device id")
    if topic_device is not None and device != topic_device:
        raise PayloadError(f"device {device!r} published on {topic_device!r}'s topic")
    seq = _int(data, "seq", 1, MAX_SEQ)
    if data.get("id") != f"{device}:{seq}":
        raise PayloadError("id must be <device>:<seq>")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise PayloadError(f"unknown kind {str(kind)[:20]!r}")
    txn = data.get("txn")
    if not isinstance(txn, str) or not _TXN.fullmatch(txn):
        raise PayloadError(f"txn must be a receipt number of at most {MAX_TEXT} characters")
    clock = data.get("clock")
    if clock is not None and (not isinstance(clock, str) or clock not in CLOCK_STATES):
        raise PayloadError(f"clock must be one of {', '.join(CLOCK_STATES)}")

    def when(value: Any, what: str) -> datetime:
        """A synchronised clock's time must lie in the window; an unsynchronised one's
        means nothing outside it: the event is placed when the controller received it,
        never refused (it is a real sale; the kiosk will not send it again)."""
        if clock != "unsynced":
            return parse_ts(value, what, now, future_tolerance_s)
        moment = parse_ts(value, what, window=False)
        late = now + timedelta(seconds=future_tolerance_s)
        return moment if TS_FLOOR <= moment <= late else now

    moves_raw = data.get("moves")
    if not isinstance(moves_raw, list):
        raise PayloadError("moves must be a list")
    if len(moves_raw) > MAX_LINES:
        raise PayloadError(f"more than {MAX_LINES} moves")
    moves = []
    seen: set[str] = set()
    for move in moves_raw:
        if not isinstance(move, dict) or set(move) != {"sku", "delta"}:
            raise PayloadError("each move must be {sku, delta}")
        sku = _sku(move["sku"])
        if sku in seen:  # moves are the net change per SKU: a repeat would dodge the bound
            raise PayloadError(f"sku {sku} appears twice in moves")
        seen.add(sku)
        delta = move["delta"]
        if not isinstance(delta, int) or isinstance(delta, bool):
            raise PayloadError(f"delta of {sku} must be an integer")
        if abs(delta) > MAX_MOVE_QTY:
            raise PayloadError(f"delta of {sku} is over the {MAX_MOVE_QTY} limit")
        moves.append((sku, delta))
    counted = counted_at = None
    if kind == "count":
        counted_raw, at_raw = data.get("counted"), data.get("counted_at")
        if not isinstance(counted_raw, dict) or not isinstance(at_raw, dict):
            raise PayloadError("a count needs counted and counted_at objects")
        if len(counted_raw) > MAX_LINES:
            raise PayloadError(f"more than {MAX_LINES} counted SKUs")
        counted, counted_at = {}, {}
        for sku, qty in counted_raw.items():
            _sku(sku)
            if not isinstance(qty, int) or isinstance(qty, bool) or not 0 <= qty <= MAX_COUNT_QTY:
                raise PayloadError(f"count of {sku} must be 0..{MAX_COUNT_QTY}")
            counted[sku] = qty
            counted_at[sku] = when(at_raw.get(sku), f"counted_at of {sku}")
    return StockEvent(
        device=device,
        seq=seq,
        ts=when(data.get("ts"), "ts"),
        kind=kind,
        txn=txn,
        moves=tuple(moves),
        counted=counted,
        counted_at=counted_at,
        clock=clock,
    )


def event_identity(raw: bytes, topic_device: str) -> tuple[str, int] | None:
    """(device, seq) of a refused stock event when those two can be read and agree
    with the topic, else None: lets the controller's gap check pass over that seq."""
    try:
        data = _load(raw)
        seq = _int(data, "seq", 1, MAX_SEQ)
    except PayloadError:
        return None
    if data.get("device") != topic_device or data.get("id") != f"{topic_device}:{seq}":
        return None
    return topic_device, seq


@dataclass(frozen=True)
class KioskStatus:
    device: str
    online: bool
    ts: datetime
    outbox: int
    printer: str
    seq: int | None  # the kiosk's latest stock event (an extension: lets gaps be seen)
    catalog: int | None = None  # the item master version it sells from (None: not said)
    catalog_error: str | None = None  # why it refused the latest version it was sent


def kiosk_status(
    device: str,
    online: bool,
    outbox: int,
    printer: str,
    seq: int | None,
    catalog: int | None = None,
    catalog_error: str | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "v": VERSION,
        "device": device,
        "online": online,
        "ts": ts_now(),
        "outbox": outbox,
        "printer": printer,
    }
    if seq is not None:
        payload["seq"] = seq
    if catalog is not None:
        payload["catalog"] = catalog
    if catalog_error:
        payload["catalog_error"] = catalog_error[:MAX_ERROR_TEXT]
    return payload


def parse_kiosk_status(
    raw: bytes,
    topic_device: str | None = None,
    now: datetime | None = None,
    future_tolerance_s: float = FUTURE_TOLERANCE_S,
) -> KioskStatus:
    now = now or datetime.now(UTC)
    data = _load(raw)
    device = data.get("device")
    if not isinstance(device, str) or not _ID.fullmatch(device):
        raise PayloadError("device must be a device id")
    if topic_device is not None and device != topic_device:
        raise PayloadError("device does not match the topic")
    if not isinstance(data.get("online"), bool):
        raise PayloadError("online must be true or false")
    printer = data.get("printer", "ok")
    if not isinstance(printer, str) or printer not in ("ok", "paper_out", "offline"):
        raise PayloadError(f"unknown printer state {str(printer)[:20]!r}")
    seq = _int(data, "seq", 0, MAX_SEQ) if data.get("seq") is not None else None
    catalog = _int(data, "catalog", 0, MAX_SEQ) if data.get("catalog") is not None else None
    error = data.get("catalog_error")
    if error is not None and (not isinstance(error, str) or len(error) > MAX_ERROR_TEXT):
        raise PayloadError(f"catalog_error must be text of at most {MAX_ERROR_TEXT} characters")
    return KioskStatus(
        device=device,
        online=data["online"],
        ts=parse_ts(data.get("ts"), "ts", now, future_tolerance_s),
        outbox=_int(data, "outbox", 0, MAX_OUTBOX),
        printer=printer,
        seq=seq,
        catalog=catalog,
        catalog_error=error or None,
    )


def stock_level(sku: str, on_hand: int) -> dict[str, Any]:
    return {"v": VERSION, "sku": sku, "on_hand": on_hand, "ts": ts_now()}


def controller_status(online: bool) -> dict[str, Any]:
    return {"v": VERSION, "online": online, "ts": ts_now()}


def resync(from_seq: int) -> dict[str, Any]:
    return {"v": VERSION, "from_seq": from_seq}


def parse_resync(raw: bytes) -> int:
    return _int(_load(raw), "from_seq", 1, MAX_SEQ)


# ------------------------------------------------------------------ item master
# Bounds of the catalog messages (README, "Item master distribution"). A transfer is
# a zlib-compressed body of JSON lines (one item record each) cut into chunks; each
# chunk is one MQTT message: a JSON header line, "\n", then the chunk's bytes.
CATALOG_CHUNK = 48 * 1024  # body bytes in one chunk: header + chunk < MAX_PAYLOAD
MAX_CHUNKS = 8192  # chunks in one transfer: 384 MiB compressed
MAX_CATALOG_BYTES = 512 * 1024 * 1024  # a transfer's body once decompressed
MAX_CATALOG_ITEMS = 1_000_000  # items in one version of the master
MAX_RECORD_BYTES = 16 * 1024  # one item record's JSON line
MAX_ERROR_TEXT = 200  # characters of a status's catalog_error
_XFER = re.compile(r"[0-9a-f]{16}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
TRANSFER_KINDS = ("delta", "full")


def catalog_current(version: int, checksum: str, items: int) -> dict[str, Any]:
    return {"v": VERSION, "version": version, "checksum": checksum, "items": items, "ts": ts_now()}


@dataclass(frozen=True)
class CatalogCurrent:
    version: int
    checksum: str
    items: int


def _hex64(data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise PayloadError(f"{key} must be 64 lower-case hex digits")
    return value


def parse_catalog_current(raw: bytes) -> CatalogCurrent:
    data = _load(raw)
    return CatalogCurrent(
        version=_int(data, "version", 0, MAX_SEQ),
        checksum=_hex64(data, "checksum"),
        items=_int(data, "items", 0, MAX_CATALOG_ITEMS),
    )


def catalog_get(device: str, have: int, full: bool = False) -> dict[str, Any]:
    return {"v": VERSION, "device": device, "have": have, "full": full}


@dataclass(frozen=True)
class CatalogGet:
    device: str
    have: int
    full: bool


def parse_catalog_get(raw: bytes, topic_device: str) -> CatalogGet:
    data = _load(raw)
    if data.get("device") != topic_device:
        raise PayloadError("device does not match the topic")
    full = data.get("full", False)
    if not isinstance(full, bool):
        raise PayloadError("full must be true or false")
    return CatalogGet(topic_device, _int(data, "have", 0, MAX_SEQ), full)


@dataclass(frozen=True)
class CatalogChunk:
    xfer: str  # one transfer's id: 16 hex digits
    kind: str  # "delta" (from base) or "full"
    base: int  # the version a delta applies to (0 for full)
    version: int  # the version the transfer makes
    checksum: str  # of the whole version (kiosk.mqtt.master.checksum)
    items: int  # items in the whole version
    index: int
    count: int
    size: int  # bytes of the whole compressed body
    digest: str  # sha256 of the whole compressed body
    body: bytes


def catalog_chunk(header: dict[str, Any], body: bytes) -> bytes:
    return encode({"v": VERSION, **header}) + b"\n" + body


def parse_catalog_chunk(raw: bytes) -> CatalogChunk:
    if not isinstance(raw, bytes | bytearray):
        raise PayloadError("payload must be bytes")
    if len(raw) > MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(raw)} bytes is over the {MAX_PAYLOAD} limit")
    head, sep, body = bytes(raw).partition(b"\n")
    if not sep:
        raise PayloadError("a catalog chunk needs a header line")
    data = _load(head)
    xfer = data.get("xfer")
    if not isinstance(xfer, str) or not _XFER.fullmatch(xfer):
        raise PayloadError("xfer must be 16 hex digits")
    kind = data.get("kind")
    if kind not in TRANSFER_KINDS:
        raise PayloadError(f"kind must be one of {', '.join(TRANSFER_KINDS)}")
    count = _int(data, "n", 1, MAX_CHUNKS)
    index = _int(data, "i", 0, count - 1)
    size = _int(data, "size", 0, MAX_CHUNKS * CATALOG_CHUNK)
    if len(body) > CATALOG_CHUNK:
        raise PayloadError(f"chunk of {len(body)} bytes is over the {CATALOG_CHUNK} limit")
    version = _int(data, "version", 1, MAX_SEQ)
    base = _int(data, "base", 0, version - 1)
    if kind == "full" and base != 0:
        raise PayloadError("a full transfer has base 0")
    return CatalogChunk(
        xfer=xfer,
        kind=kind,
        base=base,
        version=version,
        checksum=_hex64(data, "checksum"),
        items=_int(data, "items", 0, MAX_CATALOG_ITEMS),
        index=index,
        count=count,
        size=size,
        digest=_hex64(data, "sha256"),
        body=body,
    )


# ------------------------------------------------------------------ attendant alerts
# README, "Attendant alerts". A kiosk raises an alert on its own topic (QoS 1, not
# retained: an alert is an event); the controller keeps it and publishes it retained on
# <root>/alerts/<device>/<id>, so a staffed till or a mobile cart that connects later
# still gets every open one. Acknowledging (on the web view, or on a kiosk's own
# <root>/kiosk/<device>/ack) clears that retained message with an empty one: every
# screen drops it at once, and the broker no longer holds it.
ALERT_KINDS = (
    "call_staff",  # the customer pressed "call staff" / left during payment
    "age_check",  # an age-restricted item waits for a staff check
    "approval",  # another supervisor approval (price override, void ...)
    "paper_out",  # the receipt printer is out of paper
    "printer",  # another printer fault (offline, cover open)
    "drawer_open",  # the cash drawer was left open
    "disk_full",  # the kiosk's storage is (nearly) full
    "payment",  # the card terminal needs staff
    "other",
)
MAX_ALERT_BYTES = 2048  # an alert or acknowledgement message
MAX_ALERT_TEXT = 200  # characters of an alert's text
MAX_OPEN_ALERTS = 50  # open alerts of one kiosk; more are dead-lettered (a flood)
_ALERT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


def kiosk_alert_topic(root: str, device: str) -> str:
    return f"{root}/kiosk/{device}/alert"


def kiosk_ack_topic(root: str, device: str) -> str:
    return f"{root}/kiosk/{device}/ack"


def open_alert_topic(root: str, device: str, alert_id: str) -> str:
    return f"{root}/alerts/{device}/{alert_id}"


def alert_acl(root: str) -> list[str]:
    """The broker ACL lines the alert topics need (kiosk.mqtt.broker renders the rest)."""
    return [
        f"pattern write {root}/kiosk/%u/alert",
        f"pattern write {root}/kiosk/%u/ack",
        f"pattern read {root}/alerts/#",
    ]


@dataclass(frozen=True)
class Alert:
    device: str
    id: str
    kind: str
    text: str
    ts: datetime

    @property
    def key(self) -> str:
        return f"{self.device}/{self.id}"


@dataclass(frozen=True)
class AlertAck:
    device: str  # the kiosk that acknowledged
    alert_device: str  # the alert's kiosk
    alert_id: str
    by: str  # staff id (or name) as the kiosk knows them


def alert(device: str, alert_id: str, kind: str, text: str, ts: str | None = None) -> dict:
    return {
        "v": VERSION,
        "device": device,
        "id": alert_id,
        "kind": kind,
        "text": text[:MAX_ALERT_TEXT],
        "ts": ts or ts_now(),
    }


def alert_ack(device: str, alert_device: str, alert_id: str, by: str) -> dict:
    return {"v": VERSION, "device": device, "alert": f"{alert_device}/{alert_id}", "by": by[:32]}


def _alert_load(raw: bytes) -> dict:
    if isinstance(raw, bytes | bytearray) and len(raw) > MAX_ALERT_BYTES:
        raise PayloadError(f"alert message of {len(raw)} bytes is over {MAX_ALERT_BYTES}")
    return _load(raw)


def _text_field(data: dict, key: str, limit: int) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or len(value) > limit:
        raise PayloadError(f"{key} must be text of at most {limit} characters")
    if any(ord(c) < 32 and c not in "\t" for c in value):
        raise PayloadError(f"{key} must not hold control characters")
    return value


def parse_alert(
    raw: bytes,
    topic_device: str,
    now: datetime | None = None,
    future_tolerance_s: float = FUTURE_TOLERANCE_S,
) -> Alert:
    """An alert from a kiosk within every bound, or PayloadError. A kiosk whose clock is
    off still gets its alert through: a time outside the window becomes `now`."""
    now = now or datetime.now(UTC)
    data = _alert_load(raw)
    if data.get("device") != topic_device:
        raise PayloadError("device does not match the topic")
    alert_id = data.get("id")
    if not isinstance(alert_id, str) or not _ALERT_ID.fullmatch(alert_id):
        raise PayloadError("id must be 1-32 letters, digits, '_' or '-'")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in ALERT_KINDS:
        raise PayloadError(f"unknown alert kind {str(kind)[:20]!r}")
    text = _text_field(data, "text", MAX_ALERT_TEXT)
    moment = parse_ts(data.get("ts"), "ts", window=False)
    if not TS_FLOOR <= moment <= now + timedelta(seconds=future_tolerance_s):
        moment = now
    return Alert(topic_device, alert_id, kind, text, moment)


def parse_alert_ack(raw: bytes, topic_device: str) -> AlertAck:
    data = _alert_load(raw)
    if data.get("device") != topic_device:
        raise PayloadError("device does not match the topic")
    target = data.get("alert")
    if not isinstance(target, str) or target.count("/") != 1:
        raise PayloadError("alert must be <device>/<id>")
    alert_device, alert_id = target.split("/")
    if not _ID.fullmatch(alert_device) or not _ALERT_ID.fullmatch(alert_id):
        raise PayloadError("alert must be <device>/<id>")
    by = _text_field(data, "by", 32)
    return AlertAck(topic_device, alert_device, alert_id, by or topic_device)


def parse_open_alert(raw: bytes, root: str, topic: str) -> Alert | None:
    """A retained open alert as a kiosk reads it (None: the alert was cleared)."""
    if not raw:
        return None
    parts = topic[len(root) + 1 :].split("/") if topic.startswith(root + "/") else []
    if len(parts) != 3 or parts[0] != "alerts":
        raise PayloadError("not an alert topic")
    alert_ = parse_alert(raw, parts[1], future_tolerance_s=10 * 365 * 86400.0)
    if alert_.id != parts[2]:
        raise PayloadError("id does not match the topic")
    return alert_


# The kiosk's status may say more than its contract's fields (extensions, all optional):
# "app" (its firmware version) and "clock" ("synced"/"unsynced": is its clock set by NTP).
MAX_APP_TEXT = 32


UPDATE_KEYS = ("slot", "other", "version", "result", "reason")  # the "update" extension
UPDATE_RESULTS = ("ok", "rolled_back")
_UPDATE_LIMITS = {"slot": 8, "other": MAX_APP_TEXT, "version": MAX_APP_TEXT, "reason": 200}


def status_extras(
    app: str, clock_synced: bool, update: dict[str, str] | None = None
) -> dict[str, Any]:
    """`update` (kiosk.update.manager.status_fields): the booted slot, the other slot's
    version, and how the last update ended (its version, ok or rolled_back, why)."""
    extras: dict[str, Any] = {
        "app": app[:MAX_APP_TEXT],
        "clock": "synced" if clock_synced else "unsynced",
    }
    if update:
        extras["update"] = {
            key: str(update[key])[: _UPDATE_LIMITS.get(key, 16)]
            for key in UPDATE_KEYS
            if update.get(key)
        }
    return extras


def _update_extra(value: Any) -> dict[str, str] | None:
    """The "update" extension within its bounds; anything else reads as not said."""
    if not isinstance(value, dict) or not set(value) <= set(UPDATE_KEYS):
        return None
    for key, text in value.items():
        if not isinstance(text, str) or len(text) > _UPDATE_LIMITS.get(key, 16):
            return None
        if any(ord(c) < 32 for c in text):
            return None
    if "result" in value and value["result"] not in UPDATE_RESULTS:
        return None
    return dict(value)


def parse_status_extras(raw: bytes) -> dict[str, Any]:
    """{"app": version or None, "clock": "synced"/"unsynced" or None} of a status that
    parse_kiosk_status accepted; a value off its bounds reads as not said."""
    try:
        data = _load(raw)
    except PayloadError:
        return {"app": None, "clock": None}
    app = data.get("app")
    clock = data.get("clock")
    extras = {
        "app": app if isinstance(app, str) and 0 < len(app) <= MAX_APP_TEXT else None,
        "clock": clock if clock in CLOCK_STATES else None,
    }
    update = _update_extra(data.get("update"))
    if update is not None:  # said, and within its bounds
        extras["update"] = update
    return extras
