"""The kiosk's side of the item master: fetch, check and apply the controller's versions.

A thread of its own with its own MQTT connection (client id `kiosk-<device>-catalog`)
and its own connection to the ledger file. It reads the retained announcement of the
current version on <root>/catalog/current; when the kiosk's version differs it asks
on <root>/kiosk/<device>/catalog/get ({"have": N}) and the controller answers on
<root>/kiosk/<device>/catalog/data with a delta from N or the whole master, in chunks
(topics.parse_catalog_chunk). A transfer is refused, and the kiosk keeps selling on
the version it has, when a chunk is missing (asked for again after `retry_s`), when
the joined body's length or sha256 differs from its header (corrupted, truncated),
when it does not decompress, when any record fails the kiosk's own checks, or when
the checksum of the whole version after applying differs from the controller's (the
transaction is rolled back). The refusal is kept in the ledger (catalog_state.error)
and the publisher puts it in the kiosk's status.

A checked version is staged, then applied in ONE ledger transaction when `gate()`
says so: the app's gate is "no sale open" (an open cart keeps the prices it was
scanned at; the version applies when the sale ends). `apply_staged()` may also be
called by whoever owns the checkout, between sales.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import json
import logging
import operator
import re
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from kiosk import numbers
from kiosk.config import Config
from kiosk.ledger.catalog import KIT_KINDS, UNITS
from kiosk.ledger.money import TaxPolicy
from kiosk.mqtt import master, topics
from kiosk.mqtt.publisher import make_client

log = logging.getLogger(__name__)

_SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,31}")
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,31}")
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class CatalogError(Exception):
    """A transfer or version refused; the text says why (one line)."""

    def __init__(self, message: str, want_full: bool = False):
        super().__init__(message)
        self.want_full = want_full


@dataclass(frozen=True)
class Received:
    kind: str
    base: int
    version: int
    checksum: str
    items: int
    records: list[list]
    size: int  # compressed bytes received
    digests: list[str] | None = None  # of each record's line (master.digest when None)


# ------------------------------------------------------------------ checks


def _pairs(text: object, what: str, key: re.Pattern) -> dict[str, int]:
    if not isinstance(text, str) or len(text) > 4000:
        raise CatalogError(f"{what} must be text")
    out: dict[str, int] = {}
    for part in text.split(";") if text else []:
        code, _, qty = part.partition("*")
        if not key.fullmatch(code) or code in out:
            raise CatalogError(f"bad {what} entry {part[:40]!r}")
        try:
            out[code] = numbers.whole(qty, what, minimum=1, maximum=numbers.MAX_PACK)
        except numbers.NumberError as exc:
            raise CatalogError(str(exc)) from None
    return out


_PLAIN = {}  # places -> a plain decimal within numbers.MAX_MONEY's digits


def _money(text: str, what: str, unit: Decimal) -> None:
    """numbers.money's rules, with a fast path for the plain texts the controller writes."""
    places = max(0, -unit.as_tuple().exponent)
    pattern = _PLAIN.get(places)
    if pattern is None:
        pattern = _PLAIN[places] = re.compile(rf"(0|[1-9][0-9]{{0,6}})(\.[0-9]{{1,{places}}})?")
    if not (places and pattern.fullmatch(text)):
        numbers.money(text, what, unit)


def check_record(rec: object, policy: TaxPolicy) -> list:
    """An item record within the kiosk's own rules (the ones its CSV import applies)."""
    if not isinstance(rec, list) or len(rec) != 12:
        raise CatalogError("an item record must be a list of 12 fields")
    sku, name, price, tax, unit, cost, active, kit, min_age, barcodes, comps, bom = rec
    if not isinstance(sku, str) or not _SKU.fullmatch(sku):
        raise CatalogError(f"bad sku {str(sku)[:40]!r}")
    try:
        if not isinstance(name, str) or not 0 < len(name) <= 120:
            raise CatalogError(f"{sku}: name must be 1-120 characters")
        if not isinstance(price, str):
            raise CatalogError(f"{sku}: price must be text")
        _money(price, f"{sku}: price", policy.unit)
        if not isinstance(tax, str) or tax not in policy.rates:  # a list is unhashable
            raise CatalogError(f"{sku}: unknown tax category {str(tax)[:20]!r}")
        if unit not in UNITS:
            raise CatalogError(f"{sku}: unit must be each or kg")
        if not isinstance(cost, str):
            raise CatalogError(f"{sku}: cost must be text")
        if cost:
            _money(cost, f"{sku}: cost", Decimal("0.0001"))
        if active not in (0, 1) or isinstance(active, bool):
            raise CatalogError(f"{sku}: active must be 0 or 1")
        if kit not in KIT_KINDS:
            raise CatalogError(f"{sku}: kit must be empty, bundle or assembled")
        numbers.whole(min_age, f"{sku}: min_age", maximum=99)
        numbers.whole(bom, f"{sku}: bom version", maximum=topics.MAX_SEQ)
    except numbers.NumberError as exc:
        raise CatalogError(str(exc)) from None
    _pairs(barcodes, f"{sku}: barcodes", _CODE)
    components = _pairs(comps, f"{sku}: components", _SKU)
    if bool(components) != bool(kit):
        raise CatalogError(f"{sku}: a kit needs components and only a kit has them")
    if sku in components:
        raise CatalogError(f"{sku}: a kit cannot contain itself")
    return rec


def decode(body: bytes, policy: TaxPolicy) -> tuple[list[list], list[str]]:
    """The records of a transfer body, each checked; CatalogError on anything else.
    Each record comes with the sha256 of its line as received (its digest: a line
    that is not the canonical form of its record fails the version's checksum).

    A body the fast path (`_decode_fast`) accepts is one the record-by-record path
    accepts, with the same records and digests; on anything it cannot decide, the
    record-by-record path runs and refuses with the same words as ever."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(body, topics.MAX_CATALOG_BYTES + 1)
    except zlib.error as exc:
        raise CatalogError(f"transfer does not decompress: {exc}") from None
    if len(text) > topics.MAX_CATALOG_BYTES:
        raise CatalogError(f"transfer is over {topics.MAX_CATALOG_BYTES} bytes decompressed")
    if not inflater.eof or inflater.unused_data:
        raise CatalogError("transfer is truncated or has trailing bytes")
    if not text:
        return [], []
    lines = text.split(b"\n")
    with _no_gc():
        return _decode_fast(text, lines, policy) or _decode_each(lines, policy)


def _decode_each(lines: list[bytes], policy: TaxPolicy) -> tuple[list[list], list[str]]:
    """Record by record, refusing at the first line that fails (the reference rules)."""
    records, digests = [], []
    for line in lines:
        if len(line) > topics.MAX_RECORD_BYTES:
            raise CatalogError(f"an item record of {len(line)} bytes is too long")
        if len(records) >= topics.MAX_CATALOG_ITEMS:
            raise CatalogError(f"more than {topics.MAX_CATALOG_ITEMS} items")
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            raise CatalogError("an item record is not JSON") from None
        records.append(check_record(rec, policy))
        digests.append(hashlib.sha256(line).hexdigest())
    if len({r[0] for r in records}) != len(records):
        raise CatalogError("an item is listed twice")
    return records, digests


# The fast path: the same rules, checked a column at a time by C code (map, set,
# min/max, compiled patterns) instead of a Python call per field. Each test below is
# sufficient for the rule it stands for; whatever fails one of them goes to
# _decode_each, which decides (and names the item and the reason).
_SCAN = json.JSONDecoder().scan_once  # one JSON value from a str at an index -> (value, end)
_PACK_TEXT = r"(?:[1-9][0-9]{0,3}|10000)"  # numbers.whole's 1..MAX_PACK, plain digits
assert numbers.MAX_PACK == 10000
_PAIRS_TEXT = rf"(?:{_CODE.pattern}\*{_PACK_TEXT}(?:;{_CODE.pattern}\*{_PACK_TEXT})*)?"
_MONEY_TEXT = r"(?:0|[1-9][0-9]{0,6})"  # below numbers.MAX_MONEY (10,000,000)
assert numbers.MAX_MONEY == 10_000_000
_hexdigest = operator.methodcaller("hexdigest")


def _column(pattern: str) -> re.Pattern:
    """`pattern` (which never matches a newline) for every line of a column's texts
    joined with newlines: one C call for 100,000 values. Possessive, so no backtracking."""
    return re.compile(rf"(?:{pattern}\n)*+{pattern}")


_SKUS = _column(_SKU.pattern)
_BARCODE_COLUMN = _column(_PAIRS_TEXT)
_COST_COLUMN = _column(rf"(?:{_MONEY_TEXT}(?:\.[0-9]{{1,4}})?)?")  # empty, or 4 places
_PRICE_COLUMNS: dict[int, re.Pattern] = {}


def _all_match(column_pattern: re.Pattern, column: tuple[str, ...]) -> bool:
    """Every text of the column matches (none holds a newline that would split it)."""
    joined = "\n".join(column)
    return joined.count("\n") == len(column) - 1 and bool(column_pattern.fullmatch(joined))


def _price_column(unit: Decimal) -> re.Pattern:
    places = max(0, -unit.as_tuple().exponent)
    if places not in _PRICE_COLUMNS:
        fraction = rf"(?:\.[0-9]{{1,{places}}})?" if places else ""
        _PRICE_COLUMNS[places] = _column(_MONEY_TEXT + fraction)
    return _PRICE_COLUMNS[places]


def _only(column: tuple, kind: type) -> bool:
    return set(map(type, column)) == {kind}


@contextlib.contextmanager
def _no_gc():
    """Without the cyclic collector for a moment: 100,000 fresh records would make it
    walk every one of them again and again (it costs more than the checks)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _decode_fast(
    text: bytes, lines: list[bytes], policy: TaxPolicy
) -> tuple[list[list], list[str]] | None:
    if len(lines) > topics.MAX_CATALOG_ITEMS or max(map(len, lines)) > topics.MAX_RECORD_BYTES:
        return None
    try:
        texts = text.decode("utf-8").split("\n")
        scanned = list(map(_SCAN, texts, itertools.repeat(0)))
    except (ValueError, RecursionError, StopIteration):
        return None
    if len(scanned) != len(texts):  # a StopIteration inside map() ends it early
        return None
    records, ends = map(list, zip(*scanned, strict=True))
    if ends != list(map(len, texts)):  # each line exactly one JSON value
        return None
    if not _plain(records, policy):
        return None
    return records, list(map(_hexdigest, map(hashlib.sha256, lines)))


def _plain(records: list, policy: TaxPolicy) -> bool:
    """True when every record passes check_record and no SKU is listed twice."""
    if not _only(records, list) or set(map(len, records)) != {12}:
        return False
    columns = zip(*records, strict=True)
    sku, name, price, tax, unit, cost, active, kit, min_age, barcodes, comps, bom = columns
    if not all(_only(c, str) for c in (sku, name, price, tax, unit, cost, kit, barcodes, comps)):
        return False
    if not all(_only(c, int) for c in (active, min_age, bom)):  # bool is not int here
        return False
    if len(set(sku)) != len(sku) or not _all_match(_SKUS, sku):
        return False
    if min(map(len, name)) < 1 or max(map(len, name)) > 120:
        return False
    if not _all_match(_price_column(policy.unit), price):
        return False
    if not set(tax) <= set(policy.rates) or not set(unit) <= set(UNITS):
        return False
    if not _all_match(_COST_COLUMN, cost):
        return False
    if not set(active) <= {0, 1} or not set(kit) <= set(KIT_KINDS):
        return False
    if min(min_age) < 0 or max(min_age) > 99 or min(bom) < 0 or max(bom) > topics.MAX_SEQ:
        return False
    if max(map(len, barcodes)) > 4000 or not _all_match(_BARCODE_COLUMN, barcodes):
        return False
    for text in barcodes:
        if ";" in text:
            codes = [part.partition("*")[0] for part in text.split(";")]
            if len(set(codes)) != len(codes):
                return False
    for rec, kind, components in zip(records, kit, comps, strict=True):
        if kind:  # kits are few: the full check (components, not itself)
            try:
                check_record(rec, policy)
            except CatalogError:
                return False
        elif components:
            return False
    return True


# ------------------------------------------------------------------ the ledger side


class KioskCatalog:
    """The kiosk's item master in its ledger, through a connection of its own."""

    def __init__(self, path: Path, policy: TaxPolicy):
        self.policy = policy
        self.conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30
        )
        self.conn.execute("PRAGMA busy_timeout = 30000")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA cache_size = -32768")  # 32 MiB: a whole master's pages
        self.lock = threading.Lock()

    def close(self) -> None:
        self.conn.close()

    def state(self) -> tuple[int, str, int, str | None]:
        """(version, checksum, items, error); (0, EMPTY, 0, None) before any version."""
        row = self.conn.execute(
            "SELECT version, checksum, items, error FROM catalog_state WHERE id = 1"
        ).fetchone()
        return tuple(row) if row else (0, master.EMPTY, 0, None)

    def refuse(self, version: int, why: str) -> None:
        """Keep why a version was refused (the status says it); selling goes on."""
        why = why[: topics.MAX_ERROR_TEXT]
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.execute(
                    "INSERT INTO catalog_state (id, version, checksum, items, error, "
                    "error_version, error_at) VALUES (1, 0, ?, 0, ?, ?, ?) ON CONFLICT(id) DO "
                    "UPDATE SET error = excluded.error, error_version = excluded.error_version, "
                    "error_at = excluded.error_at",
                    (master.EMPTY, why, version, _now()),
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def apply(self, got: Received) -> bool:
        """Apply a checked transfer in one transaction; False if the kiosk already has
        that version or a newer one. CatalogError (nothing written) when it does not
        fit the kiosk's version or the checksum of the whole version differs."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                with _no_gc():
                    done = self._apply(got)
                self.conn.execute("COMMIT" if done else "ROLLBACK")
                return done
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def _apply(self, got: Received) -> bool:
        sql = self.conn.execute
        version, checksum, _items, _ = self.state()
        if got.version <= version and got.kind == "delta":
            return False
        if got.kind == "delta" and got.base != version:
            raise CatalogError(
                f"a delta from version {got.base} does not fit version {version}", want_full=True
            )
        skus = [r[0] for r in got.records]
        if got.kind == "full":
            owned = dict(sql("SELECT sku, digest FROM catalog_item"))
            start, removed = master.EMPTY, []
        else:
            owned = {}
            for i in range(0, len(skus), 500):
                chunk = skus[i : i + 500]
                owned.update(
                    sql(
                        "SELECT sku, digest FROM catalog_item WHERE sku IN "
                        f"({','.join('?' * len(chunk))})",
                        chunk,
                    )
                )
            start, removed = checksum, list(owned.values())
        digests = got.digests or [master.digest(r) for r in got.records]
        cur = self.conn.cursor()
        try:
            cur.executemany(
                "INSERT INTO item (sku, name, price, tax_code, cost, unit, active, kit, min_age) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sku) DO UPDATE SET "
                "name = excluded.name, price = excluded.price, tax_code = excluded.tax_code, "
                "cost = excluded.cost, unit = excluded.unit, active = excluded.active, "
                "kit = excluded.kit, min_age = excluded.min_age",
                [(r[0], r[1], r[2], r[3], r[5] or None, r[4], r[6], r[7], r[8])
                 for r in got.records],
            )  # fmt: skip
            if sql("SELECT 1 FROM barcode LIMIT 1").fetchone():  # none on a cold start
                cur.executemany("DELETE FROM barcode WHERE sku = ?", [(s,) for s in skus])
            cur.executemany(
                "INSERT INTO barcode (code, sku, pack_qty) VALUES (?, ?, ?)",
                [(code, r[0], pack) for r in got.records
                 for code, pack in master.parse_pairs(r[9]).items()],
            )  # fmt: skip
            for r in got.records:
                if r[7]:
                    self._bom(r[0], master.parse_pairs(r[10]), r[11])
            if got.kind == "full":
                listed = set(skus)
                gone = [(s,) for s in owned if s not in listed]
                cur.executemany("UPDATE item SET active = 0 WHERE sku = ?", gone)
                cur.execute("DELETE FROM catalog_item")
            cur.executemany(
                "INSERT INTO catalog_item (sku, digest, version) VALUES (?, ?, ?) "
                "ON CONFLICT(sku) DO UPDATE SET digest = excluded.digest, "
                "version = excluded.version",
                [(s, d, got.version) for s, d in zip(skus, digests, strict=True)],
            )
        except sqlite3.IntegrityError as exc:
            raise CatalogError(f"version {got.version} does not fit this ledger: {exc}") from None
        total = master.combine(start, digests, removed)
        count = sql("SELECT COUNT(*) FROM catalog_item").fetchone()[0]
        if total != got.checksum or count != got.items:
            raise CatalogError(
                f"version {got.version} fails its checksum (the whole version differs)",
                want_full=got.kind == "delta",
            )
        sql(
            "INSERT INTO catalog_state (id, version, checksum, items, applied_at) "
            "VALUES (1, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET version = excluded.version, "
            "checksum = excluded.checksum, items = excluded.items, "
            "applied_at = excluded.applied_at, error = NULL, error_version = NULL, "
            "error_at = NULL",
            (got.version, total, count, _now()),
        )
        sql(
            "INSERT INTO audit (ts, staff, action, subject, field, old, new, detail) "
            "VALUES (?, NULL, 'catalog_version', NULL, 'version', ?, ?, ?)",
            (_now(), str(version), str(got.version), f"{got.kind}: {len(skus)} item(s)"),
        )
        return True

    def _bom(self, kit: str, components: dict[str, int], bom_version: int) -> None:
        sql = self.conn.execute
        latest = sql(
            "SELECT id, version FROM kit_bom WHERE kit_sku = ? ORDER BY version DESC LIMIT 1",
            (kit,),
        ).fetchone()
        if latest is not None:
            have = dict(
                sql("SELECT component_sku, qty FROM kit_component WHERE bom_id = ?", (latest[0],))
            )
            if have == components:
                return
        taken = latest[1] if latest else 0
        version = bom_version if bom_version > taken else taken + 1
        cursor = sql(
            "INSERT INTO kit_bom (kit_sku, version, created_at, created_by) "
            "VALUES (?, ?, ?, 'controller')",
            (kit, version, _now()),
        )
        self.conn.executemany(
            "INSERT INTO kit_component (bom_id, component_sku, qty) VALUES (?, ?, ?)",
            [(cursor.lastrowid, sku, qty) for sku, qty in sorted(components.items())],
        )


def _now() -> str:
    return datetime.now(UTC).strftime(TS_FORMAT)


# ------------------------------------------------------------------ the MQTT side


class _Assembly:
    def __init__(self, first: topics.CatalogChunk):
        self.head = first
        self.parts: dict[int, bytes] = {}
        self.last = time.monotonic()

    def add(self, chunk: topics.CatalogChunk) -> bytes | None:
        self.parts[chunk.index] = chunk.body
        self.last = time.monotonic()
        if len(self.parts) < self.head.count:
            return None
        return b"".join(self.parts[i] for i in range(self.head.count))


class CatalogSync:
    """Keeps the kiosk's ledger on the controller's current item master version."""

    def __init__(
        self,
        config: Config,
        ledger_path: Path | None = None,
        gate: Callable[[], bool] = lambda: True,
        retry_s: float = 5.0,
        on_applied: Callable[[int], None] | None = None,
    ):
        self.config = config
        self.device = config.device.id
        self.topics = topics.Topics(config.topic_root)
        self.policy = TaxPolicy.from_config(config.money)
        self.catalog = KioskCatalog(ledger_path or config.ledger.path, self.policy)
        self.gate = gate
        self.retry_s = retry_s
        self.on_applied = on_applied
        self.connected = threading.Event()
        self.announced: topics.CatalogCurrent | None = None
        self.staged: Received | None = None
        self.received_bytes = 0
        self.refusals: list[str] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._done: list[tuple[topics.CatalogChunk, bytes]] = []
        self._assemblies: dict[str, _Assembly] = {}
        self._asked_at = -1e9
        self._want_full = False
        self._thread: threading.Thread | None = None
        self.client = make_client(config, f"kiosk-{self.device}-catalog")
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 30)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> CatalogSync:
        self._thread = threading.Thread(target=self._run, name="catalog-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()
        self.catalog.close()

    def version(self) -> int:
        return self.catalog.state()[0]

    def _run(self) -> None:
        mqtt_cfg = self.config.mqtt
        while not self._stop.is_set():
            try:
                self.client.connect(mqtt_cfg.host, mqtt_cfg.port, mqtt_cfg.keepalive)
                break
            except OSError:
                self._stop.wait(1.0)
        self.client.loop_start()  # paho reconnects by itself from here on
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # noqa: BLE001 - the thread outlives any one failure
                log.exception("catalog sync")
                self._stop.wait(1.0)
            self._wake.wait(0.1)
            self._wake.clear()

    # ------------------------------------------------------------ paho's thread

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the catalog sync: %s", reason_code)
            return
        client.subscribe(
            [(self.topics.catalog_current, 1), (self.topics.catalog_data(self.device), 1)]
        )
        self._asked_at = -1e9  # ask again at once if behind
        self.connected.set()
        self._wake.set()

    def _on_message(self, client, userdata, message) -> None:
        try:
            if message.topic == self.topics.catalog_current:
                self.announced = topics.parse_catalog_current(message.payload)
            else:
                self._chunk(topics.parse_catalog_chunk(message.payload))
        except topics.PayloadError as exc:
            log.warning("ignoring a bad catalog message: %s", exc)
        except Exception:  # noqa: BLE001 - never in paho's thread
            log.exception("catalog message")
        self._wake.set()

    def _chunk(self, chunk: topics.CatalogChunk) -> None:
        self.received_bytes += len(chunk.body)
        with self._lock:
            assembly = self._assemblies.get(chunk.xfer)
            if assembly is None:
                for xfer in sorted(self._assemblies, key=lambda x: self._assemblies[x].last)[:-3]:
                    del self._assemblies[xfer]  # keep at most a few half-received ones
                assembly = self._assemblies[chunk.xfer] = _Assembly(chunk)
            body = assembly.add(chunk)
            if body is not None:
                del self._assemblies[chunk.xfer]
                self._done.append((assembly.head, body))

    # ------------------------------------------------------------ the sync thread

    def _step(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        for head, body in done:
            self._receive(head, body)
        if self.staged is not None and self.gate():
            self.apply_staged()
        self._maybe_ask()

    def _receive(self, head: topics.CatalogChunk, body: bytes) -> None:
        started = time.monotonic()
        try:
            if len(body) != head.size or hashlib.sha256(body).hexdigest() != head.digest:
                raise CatalogError(
                    f"transfer of version {head.version} is corrupted or truncated "
                    f"({len(body)} of {head.size} bytes, or its sha256 differs)"
                )
            records, digests = decode(body, self.policy)
            if head.kind == "full" and len(records) != head.items:
                raise CatalogError(f"version {head.version} should have {head.items} items")
        except CatalogError as exc:
            self._refused(head.version, exc)
            return
        got = Received(head.kind, head.base, head.version, head.checksum, head.items,
                       records, len(body), digests)  # fmt: skip
        log.info("catalog version %d (%s): %d item(s) checked in %.2f s", got.version,
                 got.kind, len(records), time.monotonic() - started)  # fmt: skip
        if self.staged is None or got.version >= self.staged.version:
            self.staged = got

    def apply_staged(self) -> bool:
        """Apply the checked version waiting, if any (call between sales)."""
        got = self.staged
        if got is None:
            return False
        self.staged = None
        started = time.monotonic()
        try:
            applied = self.catalog.apply(got)
        except CatalogError as exc:
            self._refused(got.version, exc)
            return False
        except sqlite3.Error as exc:  # e.g. a full disk: keep the version, try again later
            log.error("could not apply catalog version %d: %s", got.version, exc)
            self.staged = got
            return False
        if applied:
            self._want_full = False
            log.info("catalog version %d applied (%s) in %.2f s", got.version, got.kind,
                     time.monotonic() - started)  # fmt: skip
            if self.on_applied:
                self.on_applied(got.version)
        self._asked_at = -1e9
        self._wake.set()
        return applied

    def _refused(self, version: int, exc: CatalogError) -> None:
        log.error("refused catalog version %d: %s", version, exc)
        self._want_full = self._want_full or exc.want_full
        with contextlib.suppress(sqlite3.Error):
            self.catalog.refuse(version, str(exc))
        self.refusals.append(str(exc))

    def _maybe_ask(self) -> None:
        current = self.announced
        if current is None or not self.connected.is_set() or self.staged is not None:
            return
        version, checksum, _, _ = self.catalog.state()
        if version == current.version and checksum == current.checksum:
            return
        if version == current.version:
            self._want_full = True  # same number, other content: start over
        now = time.monotonic()
        if now - self._asked_at < self.retry_s:
            return
        self._asked_at = now
        have = 0 if self._want_full else version
        self.client.publish(
            self.topics.catalog_get(self.device),
            topics.encode(topics.catalog_get(self.device, have, self._want_full)),
            1,
        )
