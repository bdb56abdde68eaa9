"""The one place that knows MQTT topic names and payload shapes (ARCHITECTURE.md section 4).

Parsers refuse anything off-contract with a one-line `PayloadError`, so a malformed
or hostile message is dead-lettered and never changes a count.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

VERSION = 1
MAX_PAYLOAD = 64 * 1024  # matches the broker's max_packet_size; larger is refused
KINDS = ("sale", "return", "void", "exchange", "adjust", "count", "receive", "kit_build")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,31}")
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class PayloadError(ValueError):
    """A message that is not what the contract says; the text says what is wrong."""


@dataclass(frozen=True)
class Topics:
    root: str  # e.g. shop/store-042

    def kiosk_status(self, device: str) -> str:
        return f"{self.root}/kiosk/{device}/status"

    def kiosk_stock(self, device: str) -> str:
        return f"{self.root}/kiosk/{device}/stock"

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

    def device_of(self, topic: str) -> str | None:
        """The device id in <root>/kiosk/<device>/..., or None."""
        prefix = f"{self.root}/kiosk/"
        if not topic.startswith(prefix):
            return None
        device = topic[len(prefix) :].split("/", 1)[0]
        return device if _ID.fullmatch(device) else None


def encode(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def ts_now() -> str:
    return datetime.now(UTC).strftime(TS_FORMAT)


def parse_ts(value: Any, what: str = "ts") -> datetime:
    if not isinstance(value, str):
        raise PayloadError(f"{what} must be an ISO-8601 UTC string")
    try:
        return datetime.strptime(value, TS_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{what} {value[:40]!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise PayloadError(f"{what} must carry a time zone")
    return moment.astimezone(UTC)


def _load(raw: bytes) -> dict:
    if len(raw) > MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(raw)} bytes is over the {MAX_PAYLOAD} limit")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError("not a JSON object")
    if data.get("v") != VERSION:
        raise PayloadError(f"unsupported schema version {data.get('v')!r}")
    return data


def _int(data: dict, key: str, minimum: int | None = None) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PayloadError(f"{key} must be an integer")
    if minimum is not None and value < minimum:
        raise PayloadError(f"{key} must be at least {minimum}")
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

    @property
    def id(self) -> str:
        return f"{self.device}:{self.seq}"


def parse_stock_event(raw: bytes, topic_device: str | None = None) -> StockEvent:
    data = _load(raw)
    device = data.get("device")
    if not isinstance(device, str) or not _ID.fullmatch(device):
        raise PayloadError("device must be a device id")
    if topic_device is not None and device != topic_device:
        raise PayloadError(f"device {device!r} published on {topic_device!r}'s topic")
    seq = _int(data, "seq", 1)
    if data.get("id") != f"{device}:{seq}":
        raise PayloadError("id must be <device>:<seq>")
    kind = data.get("kind")
    if kind not in KINDS:
        raise PayloadError(f"unknown kind {kind!r}")
    txn = data.get("txn")
    if not isinstance(txn, str) or not txn:
        raise PayloadError("txn must be a receipt number")
    moves_raw = data.get("moves")
    if not isinstance(moves_raw, list):
        raise PayloadError("moves must be a list")
    moves = []
    for move in moves_raw:
        if not isinstance(move, dict) or set(move) != {"sku", "delta"}:
            raise PayloadError("each move must be {sku, delta}")
        sku = move["sku"]
        if not isinstance(sku, str) or not _SKU.fullmatch(sku):
            raise PayloadError(f"bad sku {str(sku)[:40]!r}")
        delta = move["delta"]
        if not isinstance(delta, int) or isinstance(delta, bool) or abs(delta) > 10**9:
            raise PayloadError(f"delta of {sku} must be an integer")
        moves.append((sku, delta))
    counted = counted_at = None
    if kind == "count":
        counted_raw, at_raw = data.get("counted"), data.get("counted_at")
        if not isinstance(counted_raw, dict) or not isinstance(at_raw, dict):
            raise PayloadError("a count needs counted and counted_at objects")
        counted, counted_at = {}, {}
        for sku, qty in counted_raw.items():
            if not _SKU.fullmatch(sku) or not isinstance(qty, int) or qty < 0:
                raise PayloadError(f"bad count for {sku[:40]!r}")
            counted[sku] = qty
            counted_at[sku] = parse_ts(at_raw.get(sku), f"counted_at of {sku}")
    return StockEvent(
        device=device,
        seq=seq,
        ts=parse_ts(data.get("ts")),
        kind=kind,
        txn=txn,
        moves=tuple(moves),
        counted=counted,
        counted_at=counted_at,
    )


@dataclass(frozen=True)
class KioskStatus:
    device: str
    online: bool
    ts: datetime
    outbox: int
    printer: str
    seq: int | None  # the kiosk's latest stock event (an extension: lets gaps be seen)


def kiosk_status(
    device: str, online: bool, outbox: int, printer: str, seq: int | None
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
    return payload


def parse_kiosk_status(raw: bytes, topic_device: str | None = None) -> KioskStatus:
    data = _load(raw)
    device = data.get("device")
    if not isinstance(device, str) or (topic_device and device != topic_device):
        raise PayloadError("device does not match the topic")
    if not isinstance(data.get("online"), bool):
        raise PayloadError("online must be true or false")
    printer = data.get("printer", "ok")
    if printer not in ("ok", "paper_out", "offline"):
        raise PayloadError(f"unknown printer state {printer!r}")
    seq = data.get("seq")
    return KioskStatus(
        device=device,
        online=data["online"],
        ts=parse_ts(data.get("ts")),
        outbox=_int(data, "outbox", 0),
        printer=printer,
        seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
    )


def stock_level(sku: str, on_hand: int) -> dict[str, Any]:
    return {"v": VERSION, "sku": sku, "on_hand": on_hand, "ts": ts_now()}


def controller_status(online: bool) -> dict[str, Any]:
    return {"v": VERSION, "online": online, "ts": ts_now()}


def resync(from_seq: int) -> dict[str, Any]:
    return {"v": VERSION, "from_seq": from_seq}


def parse_resync(raw: bytes) -> int:
    return _int(_load(raw), "from_seq", 1)
