"""The shop's item master, kept by the controller (store.MasterItem and friends).

Every change makes a new catalog version (1, 2, 3 ...): the items it changed carry
that version, the audit trail (store.CatalogChange) says who changed which field of
which item, when, from what to what, and the version's checksum covers the whole
master as kiosks get it. A change can wait for its effective time
(store.ScheduledChange); the controller's loop makes it a version then (apply_due).

What a kiosk gets of an item is its `record` (the selling fields); the record's
digest is the sha256 of its canonical JSON, and a version's checksum is the sum of
its items' digests modulo 2**256. The sum lets a kiosk check a delta against the
whole version by adding the new items' digests and taking away the old ones,
without reading 100,000 items, and still catch any item that differs.

Rows are checked by the kiosk's own CSV rules (kiosk.ledger.catalog_csv), with the
master standing in for the ledger's items.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TextIO

from peewee import fn

from kiosk import numbers, textfile
from kiosk.config import Config
from kiosk.ledger import catalog_csv
from kiosk.ledger.barcodes import BarcodeParser
from kiosk.ledger.money import TaxPolicy
from kiosk.mqtt import store, topics
from kiosk.mqtt.store import (
    CatalogChange,
    CatalogVersion,
    MasterItem,
    ScheduledChange,
    insert_rows,
    ts,
)

EMPTY = "0" * 64  # the checksum of a master with no items
MODULUS = 2**256
# The fields of `kiosk controller catalog set` (the CSV's column names), and the
# store's column behind each.
COLUMN_OF = {
    "name": "name",
    "price": "price",
    "tax": "tax_code",
    "unit": "unit",
    "cost": "cost",
    "active": "active",
    "barcodes": "barcodes",
    "kit": "kit",
    "components": "components",
    "min_age": "min_age",
    "case_pack": "case_pack",
    "lead_time_days": "lead_time_days",
    "reorder_point": "reorder_point",
    "safety_stock": "safety_stock",
}
VALUE_COLUMNS = tuple(COLUMN_OF.values())
FULL_MIN = 2000  # a delta of more items than this and a quarter of the master: send it all


class MasterError(ValueError):
    """A change refused; the text says what is wrong (one line)."""


# ------------------------------------------------------------------ records


def record(item: MasterItem | dict) -> list:
    """What a kiosk gets of an item: [sku, name, price, tax, unit, cost, active, kit,
    min_age, barcodes, components, bom_version] (texts as stored)."""
    get = item.get if isinstance(item, dict) else lambda key: getattr(item, key)
    return [
        get("sku"),
        get("name"),
        get("price"),
        get("tax_code"),
        get("unit"),
        get("cost") or "",
        1 if get("active") else 0,
        get("kit"),
        int(get("min_age")),
        get("barcodes"),
        get("components"),
        int(get("bom_version")),
    ]


# json.dumps(rec, ensure_ascii=False, separators=(",", ":")), without making an encoder
# per call (the canonical form of a record: its digest is taken of these bytes).
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def record_bytes(rec: list) -> bytes:
    return _ENCODE(rec).encode()


def digest(rec: list) -> str:
    return hashlib.sha256(record_bytes(rec)).hexdigest()


def combine(checksum: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> str:
    total = int(checksum, 16) + sum(int(d, 16) for d in add) - sum(int(d, 16) for d in remove)
    return f"{total % MODULUS:064x}"


def pairs_text(pairs: dict[str, int]) -> str:
    return ";".join(f"{key}*{qty}" for key, qty in sorted(pairs.items()))


def parse_pairs(text: str) -> dict[str, int]:
    out = {}
    for part in text.split(";"):
        if part:
            key, _, qty = part.partition("*")
            out[key] = int(qty or 1)
    return out


# ------------------------------------------------------------------ rules


def rules(config: Config) -> SimpleNamespace:
    """What catalog_csv's row checks need of a ledger: tax policy, barcode rules, config."""
    return SimpleNamespace(
        policy=TaxPolicy.from_config(config.money),
        parser=BarcodeParser(config.barcodes, config.money),
        config=config,
    )


def known() -> catalog_csv.Known:
    skus, owners, kits = set(), {}, set()
    for sku, kit, barcodes in MasterItem.select(
        MasterItem.sku, MasterItem.kit, MasterItem.barcodes
    ).tuples():
        skus.add(sku)
        if kit:
            kits.add(sku)
        for code in parse_pairs(barcodes):
            owners[code] = sku
    return catalog_csv.Known(skus, owners, kits)


def values_of(row: catalog_csv.Row, old: MasterItem | None = None) -> dict:
    """Store values of a checked CSV row; master columns left empty keep their value."""
    case = row.case_pack or (old.case_pack if old else max(row.barcodes.values(), default=1))
    return {
        "name": row.name,
        "price": str(row.price),
        "tax_code": row.tax_code,
        "unit": row.unit,
        "cost": None if row.cost is None else str(row.cost),
        "active": bool(row.active),
        "min_age": row.min_age,
        "kit": row.kit,
        "components": pairs_text(row.components),
        "barcodes": pairs_text(row.barcodes),
        "case_pack": case,
        "lead_time_days": row.lead_time_days,
        "reorder_point": row.reorder_point,
        "safety_stock": row.safety_stock,
    }


def _item_values(item: MasterItem) -> dict:
    return {column: getattr(item, column) for column in VALUE_COLUMNS}


def _csv_fields(rules_: SimpleNamespace, values: dict, sku: str) -> dict[str, str]:
    """The CSV texts of stored values (what catalog_csv reads back)."""
    printable = rules_printable(rules_)
    barcodes = parse_pairs(values["barcodes"])
    return {
        "sku": sku,
        "name": values["name"],
        "price": values["price"],
        "tax": values["tax_code"],
        "unit": values["unit"],
        "cost": values["cost"] or "",
        "active": "1" if values["active"] else "0",
        "barcodes": ";".join(
            printable(code) if pack == 1 else f"{printable(code)}*{pack}"
            for code, pack in sorted(barcodes.items())
        ),
        "kit": values["kit"],
        "components": values["components"],
        "min_age": str(values["min_age"]),
        "case_pack": str(values["case_pack"] or ""),
        "lead_time_days": _blank(values["lead_time_days"]),
        "reorder_point": _blank(values["reorder_point"]),
        "safety_stock": _blank(values["safety_stock"]),
    }


def _blank(value) -> str:
    return "" if value is None else str(value)


def rules_printable(rules_: SimpleNamespace):
    return lambda code: catalog_csv._printable_code(rules_, code)


# ------------------------------------------------------------------ versions


def current() -> tuple[int, str, int]:
    """(version, checksum, items) of the master now; (0, EMPTY, 0) before any."""
    latest = CatalogVersion.select().order_by(CatalogVersion.version.desc()).first()
    if latest is None:
        return 0, EMPTY, 0
    return latest.version, latest.checksum, latest.items


def _lock() -> None:
    db = store.store_db.obj
    if not isinstance(db, store.SqliteDatabase):  # SQLite: the transaction is IMMEDIATE
        db.execute_sql(f"LOCK TABLE {CatalogVersion._meta.table_name} IN EXCLUSIVE MODE")


def commit(changes: dict[str, dict], staff: str | None, note: str, now: datetime) -> int | None:
    """Make one version of `changes` (sku -> all store values) inside the caller's
    transaction; None when nothing changed."""
    _lock()
    version, checksum, _ = current()
    new_version = version + 1
    stamp = ts(now)
    olds: dict[str, MasterItem] = {}
    skus = sorted(changes)
    for start in range(0, len(skus), 500):
        chunk = skus[start : start + 500]
        olds.update({m.sku: m for m in MasterItem.select().where(MasterItem.sku.in_(chunk))})
    rows, audit, added, removed = [], [], [], []
    for sku in skus:
        values = changes[sku]
        old = olds.get(sku)
        if old is None:
            bom_version = 1 if values["kit"] else 0
            audit.append(_audit(new_version, stamp, staff, sku, "item", None, "added"))
        else:
            before = _item_values(old)
            changed = [c for c in VALUE_COLUMNS if _text(before[c]) != _text(values[c])]
            if not changed:
                continue
            bom_version = old.bom_version
            if "components" in changed or ("kit" in changed and values["kit"]):
                bom_version += 1
            for column in changed:
                field = next(f for f, c in COLUMN_OF.items() if c == column)
                audit.append(
                    _audit(new_version, stamp, staff, sku, field, before[column], values[column])
                )
            removed.append(old.digest)
        row = {"sku": sku, **values, "bom_version": bom_version, "version": new_version}
        row["digest"] = digest(record(row))
        added.append(row["digest"])
        rows.append(row)
    if not rows:
        return None
    updated = [r["sku"] for r in rows if r["sku"] in olds]
    for start in range(0, len(updated), 500):
        MasterItem.delete().where(MasterItem.sku.in_(updated[start : start + 500])).execute()
    insert_rows(MasterItem, rows)
    insert_rows(CatalogChange, audit)
    CatalogVersion.create(
        version=new_version,
        created_at=stamp,
        staff=staff,
        note=note[:200],
        checksum=combine(checksum, added, removed),
        items=MasterItem.select().count(),
    )
    return new_version


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _audit(version, stamp, staff, sku, field, old, new) -> dict:
    return {
        "version": version,
        "at": stamp,
        "staff": staff,
        "sku": sku,
        "field": field,
        "old": _text(old),
        "new": _text(new),
    }


@dataclass(frozen=True)
class ImportSummary:
    version: int | None  # None: nothing changed
    added: int
    updated: int
    unchanged: int


def read_file(rules_: SimpleNamespace, path: Path) -> list[catalog_csv.Row]:
    """A catalog CSV checked row by row as `kiosk catalog import` checks it."""
    try:
        text = textfile.read_text(path)
    except FileNotFoundError:
        raise MasterError(f"{path}: no such file") from None
    except OSError as exc:
        raise MasterError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except textfile.TextFileError as exc:
        raise MasterError(str(exc)) from None
    return read_text(rules_, text, str(path))


def read_text(rules_: SimpleNamespace, text: str, source: str) -> list[catalog_csv.Row]:
    try:
        return catalog_csv.read_rows(rules_, io.StringIO(text, newline=""), source, known())
    except catalog_csv.CatalogFileError as exc:
        raise MasterError(str(exc)) from None


def import_rows(
    rows: list[catalog_csv.Row], staff: str | None, now: datetime, note: str = "import"
) -> ImportSummary:
    """Every row into the master as one version (inside the caller's transaction)."""
    olds = {m.sku: m for m in MasterItem.select()}
    changes = {}
    added = updated = unchanged = 0
    for row in rows:
        old = olds.get(row.sku)
        values = values_of(row, old)
        if old is None:
            added += 1
        elif all(_text(_item_values(old)[c]) == _text(values[c]) for c in VALUE_COLUMNS):
            unchanged += 1
            continue
        else:
            updated += 1
        changes[row.sku] = values
    version = commit(changes, staff, note, now) if changes else None
    return ImportSummary(version, added, updated, unchanged)


def parse_assignments(texts: Iterable[str]) -> dict[str, str]:
    """FIELD=VALUE pairs of `catalog set`."""
    out: dict[str, str] = {}
    for text in texts:
        field, sep, value = text.partition("=")
        field = field.strip()
        if not sep:
            raise MasterError(f"{text!r}: write FIELD=VALUE, e.g. price=2.49")
        if field not in COLUMN_OF:
            raise MasterError(f"unknown field {field!r} (have {', '.join(COLUMN_OF)})")
        if field in out:
            raise MasterError(f"{field} is given twice")
        out[field] = value.strip()
    if not out:
        raise MasterError("nothing to change: give FIELD=VALUE, e.g. price=2.49")
    return out


def checked_values(rules_: SimpleNamespace, sku: str, base: dict, fields: dict[str, str]) -> dict:
    """The item's values with `fields` (CSV texts) applied, checked as an import row."""
    raw = {**_csv_fields(rules_, base, sku), **fields}
    try:
        row = catalog_csv._parse_row(rules_, 0, raw)
    except (ValueError, numbers.NumberError) as exc:
        raise MasterError(f"{sku}: {exc}") from None
    problems = catalog_csv._check_against_ledger(
        rules_, [row], {sku: 0}, {code: (0, sku) for code in row.barcodes}, _known_for(row)
    )
    if problems:
        raise MasterError(f"{sku}: {problems[0].removeprefix('line 0: ')}")
    return values_of(row, None) | {"case_pack": row.case_pack or base["case_pack"]}


def _known_for(row: catalog_csv.Row) -> catalog_csv.Known:
    """What one row is checked against: its components, and the other items that hold
    one of its barcodes (a few queries, not the whole master)."""
    skus, kits, owners = set(), set(), {}
    wanted = sorted(row.components)
    for sku, kit in (
        MasterItem.select(MasterItem.sku, MasterItem.kit).where(MasterItem.sku.in_(wanted)).tuples()
        if wanted
        else []
    ):
        skus.add(sku)
        if kit:
            kits.add(sku)
    for code in row.barcodes:
        for sku, barcodes in (
            MasterItem.select(MasterItem.sku, MasterItem.barcodes)
            .where((MasterItem.sku != row.sku) & MasterItem.barcodes.contains(f"{code}*"))
            .tuples()
        ):
            if code in parse_pairs(barcodes):
                owners[code] = sku
    return catalog_csv.Known(skus, owners, kits)


def set_fields(
    rules_: SimpleNamespace,
    sku: str,
    fields: dict[str, str],
    staff: str | None,
    now: datetime,
    at: datetime | None = None,
) -> tuple[str, int | None]:
    """Change fields of one item now (a new version) or at `at` (scheduled, checked
    now and again when due). Returns ("applied", version) or ("scheduled", None)."""
    item = MasterItem.get_or_none(MasterItem.sku == sku)
    if item is None:
        raise MasterError(f"unknown item {sku!r} in the item master")
    values = checked_values(rules_, sku, _item_values(item), fields)
    if at is not None and at > now:
        ScheduledChange.insert_many(
            [
                {"sku": sku, "field": field, "value": value, "effective_at": ts(at),
                 "staff": staff, "created_at": ts(now)}
                for field, value in fields.items()
            ]
        ).execute()  # fmt: skip
        return "scheduled", None
    return "applied", commit({sku: values}, staff, f"set {sku}", now)


def next_due() -> datetime | None:
    first = (
        ScheduledChange.select(fn.MIN(ScheduledChange.effective_at))
        .where(ScheduledChange.state == "pending")
        .scalar()
    )
    return topics.parse_ts(first) if first else None


def apply_due(rules_: SimpleNamespace, now: datetime) -> int | None:
    """Scheduled changes whose time has come, as one version (inside the caller's
    transaction). One that no longer passes the checks is refused and kept with why."""
    due = list(
        ScheduledChange.select()
        .where((ScheduledChange.state == "pending") & (ScheduledChange.effective_at <= ts(now)))
        .order_by(ScheduledChange.effective_at, ScheduledChange.id)
    )
    if not due:
        return None
    pending: dict[str, dict] = {}
    staff = None
    applied = []
    for change in due:
        base = pending.get(change.sku)
        if base is None:
            item = MasterItem.get_or_none(MasterItem.sku == change.sku)
            if item is None:
                _refuse(change, "the item is no longer in the master")
                continue
            base = _item_values(item)
        try:
            pending[change.sku] = checked_values(
                rules_, change.sku, base, {change.field: change.value}
            )
        except MasterError as exc:
            _refuse(change, str(exc))
            continue
        staff = change.staff or staff
        applied.append(change.id)
    version = commit(pending, staff, "scheduled", now) if pending else None
    if applied:
        ScheduledChange.update(state="applied", version=version).where(
            ScheduledChange.id.in_(applied)
        ).execute()
    return version


def _refuse(change: ScheduledChange, why: str) -> None:
    ScheduledChange.update(state="refused", error=why[:500]).where(
        ScheduledChange.id == change.id
    ).execute()


def history(sku: str | None = None, limit: int = 1000) -> list[CatalogChange]:
    query = CatalogChange.select().order_by(CatalogChange.version, CatalogChange.id)
    if sku:
        query = query.where(CatalogChange.sku == sku)
    return list(query.limit(limit)) if limit else list(query)


def scheduled(sku: str | None = None) -> list[ScheduledChange]:
    query = ScheduledChange.select().order_by(ScheduledChange.effective_at, ScheduledChange.id)
    if sku:
        query = query.where(ScheduledChange.sku == sku)
    return list(query)


def export(rules_: SimpleNamespace, stream: TextIO) -> int:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(catalog_csv.ALL_COLUMNS)
    count = 0
    for item in MasterItem.select().order_by(MasterItem.sku):
        fields = _csv_fields(rules_, _item_values(item), item.sku)
        writer.writerow([fields[c] for c in catalog_csv.ALL_COLUMNS])
        count += 1
    return count


# ------------------------------------------------------------------ transfers


@dataclass(frozen=True)
class Transfer:
    kind: str  # "delta" or "full"
    base: int
    version: int
    checksum: str
    items: int
    body: bytes  # zlib of JSON lines, one record each

    def chunks(self) -> list[bytes]:
        """The MQTT messages of this transfer (topics.parse_catalog_chunk reads them)."""
        xfer = os.urandom(8).hex()
        size = topics.CATALOG_CHUNK
        parts = [self.body[i : i + size] for i in range(0, len(self.body), size)] or [b""]
        sha = hashlib.sha256(self.body).hexdigest()
        header = {"xfer": xfer, "kind": self.kind, "base": self.base, "version": self.version,
                  "checksum": self.checksum, "items": self.items, "n": len(parts),
                  "size": len(self.body), "sha256": sha}  # fmt: skip
        return [topics.catalog_chunk({**header, "i": i}, part) for i, part in enumerate(parts)]


def encode_body(records: Iterable[list]) -> bytes:
    return zlib.compress(b"\n".join(record_bytes(r) for r in records), 6)


RECORD_COLUMNS = ("sku", "name", "price", "tax_code", "unit", "cost", "active", "kit", "min_age",
                  "barcodes", "components", "bom_version")  # fmt: skip


def _records(query) -> Iterable[list]:
    """The records of the items `query` selects, from the database's own rows (the
    ORM's per-row conversion cost more than everything else of a full transfer)."""
    columns = [getattr(MasterItem, c) for c in RECORD_COLUMNS]
    cursor = MasterItem._meta.database.execute(query.select(*columns).order_by(MasterItem.sku))
    for sku, name, price, tax, unit, cost, active, kit, min_age, barcodes, comps, bom in cursor:
        yield [sku, name, price, tax, unit, cost or "", 1 if active else 0, kit, int(min_age),
               barcodes, comps, int(bom)]  # fmt: skip


def transfer(have: int, full: bool = False) -> Transfer | None:
    """What a kiosk at version `have` needs: a delta of the items changed since, or
    the whole master when it has none, is ahead (a restored store) or is far behind.
    None when it is current."""
    version, checksum, items = current()
    if version == 0 or (have == version and not full):
        return None
    if not full and 0 < have < version:
        changed = MasterItem.select().where(MasterItem.version > have)
        if changed.count() <= max(FULL_MIN, items // 4):
            return Transfer("delta", have, version, checksum, items,
                            encode_body(_records(changed)))  # fmt: skip
    return Transfer("full", 0, version, checksum, items, encode_body(_records(MasterItem.select())))


def now_utc() -> datetime:
    return datetime.now(UTC)
