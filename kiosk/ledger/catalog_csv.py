"""`kiosk catalog import|export`: the item master as CSV.

Columns (header row required; order free; extra columns refused):

  sku         required; 1-32 letters, digits, . _ / -
  name        required
  price       required; decimal in the currency's minor unit, e.g. 2.49 (per kg for kg items)
  tax         required; a tax category from [money] tax_rates
  unit        each (default) or kg
  cost        optional decimal
  active      1 (default) or 0 (also yes/no, true/false)
  barcodes    codes separated by ";" or spaces; "code*12" marks a case of 12.
              EAN-13/8, UPC-A/E, GTIN-14, or a scale label with value zero
  kit         empty, "bundle" (sold as its components) or "assembled" (built ahead)
  components  kit rows only: "SKU*qty;SKU*qty" in the components' base units
  min_age     0 (default) or the minimum buyer age

The shop controller's item master (`kiosk controller catalog import`) reads the same
file with four more optional columns, which a kiosk's own import checks and ignores:

  case_pack       pieces in the supplier's case (default: the largest barcode pack, or 1)
  lead_time_days  the supplier's lead time in whole days (default: [controller])
  reorder_point   units; empty: worked out from demand, lead time and safety stock
  safety_stock    units kept against demand swings; empty: [controller] safety_days

The whole file is checked first; every bad row is reported with its line number,
and then nothing is imported. Import adds new items and updates listed ones (each
changed field audited); items not in the file are left alone.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from peewee import OperationalError

from kiosk import numbers, textfile
from kiosk.ledger import audit, catalog
from kiosk.ledger.barcodes import BarcodeError, variable_measure_code
from kiosk.ledger.catalog import KIT_KINDS, UNITS
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.models import ts_text, utc_now

COLUMNS = (
    "sku", "name", "price", "tax", "unit", "cost", "active", "barcodes", "kit", "components",
    "min_age",
)  # fmt: skip
MASTER_COLUMNS = ("case_pack", "lead_time_days", "reorder_point", "safety_stock")
ALL_COLUMNS = COLUMNS + MASTER_COLUMNS
REQUIRED = ("sku", "name", "price", "tax")
MAX_REPORTED = 200
MAX_NAME = 120  # characters: the item table's name column, and what a receipt can wrap
_SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,31}")
_TRUE = {"1", "yes", "true", "y"}
_FALSE = {"0", "no", "false", "n"}


class CatalogFileError(LedgerError):
    """The file was refused; `problems` lists every bad row as "line N: reason"."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        shown = problems[:MAX_REPORTED]
        more = len(problems) - len(shown)
        text = "\n".join(f"{source}: {p}" for p in shown)
        if more:
            text += f"\n{source}: ... and {more} more problems"
        super().__init__(text)


@dataclass
class Row:
    line: int
    sku: str
    name: str
    price: Decimal
    tax_code: str
    unit: str
    cost: Decimal | None
    active: bool
    barcodes: dict[str, int]
    kit: str
    components: dict[str, int]
    min_age: int
    case_pack: int | None = None
    lead_time_days: int | None = None
    reorder_point: int | None = None
    safety_stock: int | None = None

    def item_values(self) -> dict:
        return {
            "name": self.name,
            "price": self.price,
            "tax_code": self.tax_code,
            "cost": self.cost,
            "unit": self.unit,
            "active": self.active,
            "kit": self.kit,
            "min_age": self.min_age,
        }


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int
    unchanged: int
    barcodes: int


def _money(text: str, what: str, unit: Decimal) -> Decimal:
    return numbers.money(text, what, unit)


def _pairs(text: str, what: str) -> Iterator[tuple[str, int]]:
    for part in re.split(r"[;\s]+", text.strip()):
        if not part:
            continue
        code, star, qty = part.partition("*")
        if not qty:
            if star:
                raise ValueError(f"{what} {part!r}: a quantity must follow *")
            yield code, 1
            continue
        yield code, numbers.whole(qty, f"{what} {code}: quantity after *", minimum=1,
                                  maximum=numbers.MAX_PACK)  # fmt: skip


def _optional_whole(text: str, what: str, maximum: int) -> int | None:
    return numbers.whole(text, what, maximum=maximum) if text else None


def _parse_row(ledger: Ledger, line: int, raw: dict[str, str]) -> Row:
    get = {key: (raw.get(key) or "").strip() for key in ALL_COLUMNS}
    for key in REQUIRED:
        if not get[key]:
            raise ValueError(f"{key} is empty")
    if not _SKU.fullmatch(get["sku"]):
        raise ValueError(f"sku {get['sku']!r} must be 1-32 letters, digits or . _ / -")
    if len(get["name"]) > MAX_NAME:
        raise ValueError(f"name is longer than {MAX_NAME} characters")
    odd = next((c for c in get["name"] if unicodedata.category(c) in ("Cc", "Cf")), None)
    if odd is not None:  # control and format characters (NUL, ESC, bidi overrides)
        raise ValueError(f"name contains the control character U+{ord(odd):04X}")
    unit_money = ledger.policy.unit
    price = _money(get["price"], "price", unit_money)
    cost = _money(get["cost"], "cost", Decimal("0.0001")) if get["cost"] else None
    if get["tax"] not in ledger.policy.rates:
        raise ValueError(
            f"unknown tax category {get['tax']!r} (have {', '.join(ledger.policy.rates)})"
        )
    unit = get["unit"] or "each"
    if unit not in UNITS:
        raise ValueError(f"unit {unit!r} must be each or kg")
    active_text = (get["active"] or "1").lower()
    if active_text not in _TRUE | _FALSE:
        raise ValueError(f"active {get['active']!r} must be 1 or 0")
    if get["kit"] not in KIT_KINDS:
        raise ValueError(f"kit {get['kit']!r} must be empty, bundle or assembled")
    barcodes: dict[str, int] = {}
    for code, pack in _pairs(get["barcodes"], "barcode"):
        try:
            key = catalog.barcode_key(ledger, code)
        except BarcodeError as exc:
            raise ValueError(f"barcode {code!r}: {exc.reason}") from None
        if key in barcodes:
            raise ValueError(f"barcode {code!r} is listed twice")
        barcodes[key] = pack
    components: dict[str, int] = {}
    for sku, qty in _pairs(get["components"], "component"):
        if sku in components:
            raise ValueError(f"component {sku} is listed twice")
        components[sku] = qty
    if components and not get["kit"]:
        raise ValueError("components given but kit is empty")
    if get["kit"] and not components:
        raise ValueError("a kit needs components")
    min_age = numbers.whole(get["min_age"] or "0", "min_age (years)", maximum=99)
    return Row(
        line=line,
        sku=get["sku"],
        name=get["name"],
        price=price,
        tax_code=get["tax"],
        unit=unit,
        cost=cost,
        active=active_text in _TRUE,
        barcodes=barcodes,
        kit=get["kit"],
        components=components,
        min_age=min_age,
        case_pack=numbers.whole(get["case_pack"], "case_pack", minimum=1, maximum=numbers.MAX_PACK)
        if get["case_pack"]
        else None,
        lead_time_days=_optional_whole(get["lead_time_days"], "lead_time_days", 365),
        reorder_point=_optional_whole(get["reorder_point"], "reorder_point", numbers.MAX_STOCK_QTY),
        safety_stock=_optional_whole(get["safety_stock"], "safety_stock", numbers.MAX_STOCK_QTY),
    )


def read_rows(ledger: Ledger, stream: TextIO, source: str, known: Known | None = None) -> list[Row]:
    """Parse and check the whole file; raise CatalogFileError listing every bad row.
    `known` stands for the ledger's items when the rows go elsewhere (the controller's
    item master): `ledger` then only lends its tax policy and barcode rules."""
    reader = csv.DictReader(stream)
    if reader.fieldnames is None:
        raise CatalogFileError(source, ["line 1: the file is empty (needs a header row)"])
    header = [name.strip() for name in reader.fieldnames]
    reader.fieldnames = header
    problems = []
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise CatalogFileError(source, [f"line 1: column(s) named twice: {', '.join(twice)}"])
    missing = [col for col in REQUIRED if col not in header]
    extra = [col for col in header if col not in ALL_COLUMNS]
    if missing or extra:
        if missing:
            problems.append(f"line 1: missing column(s) {', '.join(missing)}")
        if extra:
            problems.append(f"line 1: unknown column(s) {', '.join(extra)}")
        raise CatalogFileError(source, problems)
    rows: list[Row] = []
    seen_sku: dict[str, int] = {}
    seen_code: dict[str, tuple[int, str]] = {}
    try:
        for raw in reader:
            line = reader.line_num
            if None in raw:
                problems.append(f"line {line}: more fields than columns")
                continue
            try:
                row = _parse_row(ledger, line, raw)
            except ValueError as exc:
                problems.append(f"line {line}: {exc}")
                continue
            if row.sku in seen_sku:
                problems.append(
                    f"line {line}: duplicate SKU {row.sku} (first on line {seen_sku[row.sku]})"
                )
                continue
            seen_sku[row.sku] = line
            for code in row.barcodes:
                if code in seen_code:
                    first_line, owner = seen_code[code]
                    problems.append(
                        f"line {line}: duplicate barcode {code} (also {owner}, line {first_line})"
                    )
                else:
                    seen_code[code] = (line, row.sku)
            rows.append(row)
    except (csv.Error, UnicodeDecodeError) as exc:
        problems.append(f"line {reader.line_num}: unreadable CSV: {exc}")
    if not problems:
        problems = _check_against_ledger(ledger, rows, seen_sku, seen_code, known)
    if problems:
        raise CatalogFileError(source, problems)
    return rows


@dataclass(frozen=True)
class Known:
    """The items rows are checked against: SKUs, barcode owners, kit SKUs."""

    skus: set[str]
    owners: dict[str, str]
    kits: set[str]


def _check_against_ledger(ledger, rows, seen_sku, seen_code, given=None) -> list[str]:
    problems = []
    if given is None:
        sql = ledger.db.execute_sql
        known = {sku for (sku,) in sql("SELECT sku FROM item")}
        owners = dict(sql("SELECT code, sku FROM barcode"))
        kits = {sku for sku, kit in sql("SELECT sku, kit FROM item") if kit}
    else:
        known, owners, kits = given.skus, given.owners, given.kits
    for code, (line, sku) in seen_code.items():
        owner = owners.get(code)
        if owner is not None and owner != sku and owner not in seen_sku:
            problems.append(f"line {line}: barcode {code} already belongs to {owner}")
    file_kits = {row.sku for row in rows if row.kit}
    for row in rows:
        for comp in row.components:
            if comp not in seen_sku and comp not in known:
                problems.append(f"line {row.line}: component {comp} is not a known item")
            elif comp in file_kits or (comp not in seen_sku and comp in kits):
                problems.append(f"line {row.line}: component {comp} is itself a kit")
            elif comp == row.sku:
                problems.append(f"line {row.line}: a kit cannot contain itself")
    return problems


def controller_owned(ledger: Ledger, skus: list[str]) -> list[str]:
    """Those of `skus` the shop controller's item master owns on this kiosk."""
    owned = []
    for start in range(0, len(skus), 500):
        chunk = skus[start : start + 500]
        try:
            cursor = ledger.db.execute_sql(
                f"SELECT sku FROM catalog_item WHERE sku IN ({','.join('?' * len(chunk))})",
                chunk,
            )
        except OperationalError:  # a ledger before schema 5 has no controller items
            return []
        owned += [sku for (sku,) in cursor]
    return sorted(owned)


def refuse_owned(ledger: Ledger, skus: list[str]) -> None:
    """A kiosk attached to a controller does not change the items its master owns."""
    owned = controller_owned(ledger, skus)
    if owned:
        shown = ", ".join(owned[:5]) + (f" and {len(owned) - 5} more" if len(owned) > 5 else "")
        raise LedgerError(
            f"{shown}: owned by the shop controller's item master (change "
            f"{'it' if len(owned) == 1 else 'them'} there: kiosk controller catalog set)"
        )


def import_rows(ledger: Ledger, rows: list[Row], staff: str | None) -> ImportResult:
    """Write checked rows in one transaction (all or nothing). Items the shop
    controller owns are refused (see refuse_owned)."""
    db = ledger.db
    now = ts_text(utc_now())
    with ledger.transaction():
        refuse_owned(ledger, [row.sku for row in rows])
        existing = {
            sku: (name, Decimal(price), tax, Decimal(cost) if cost is not None else None, unit,
                  bool(active), kit, min_age)
            for sku, name, price, tax, cost, unit, active, kit, min_age in db.execute_sql(
                "SELECT sku, name, price, tax_code, cost, unit, active, kit, min_age FROM item"
            )
        }  # fmt: skip
        fields = ("name", "price", "tax_code", "cost", "unit", "active", "kit", "min_age")
        inserts, updates, audits = [], [], []
        unchanged = 0
        for row in rows:
            values = row.item_values()
            flat = tuple(values[f] for f in fields)
            if row.sku not in existing:
                inserts.append((row.sku, *_db_values(flat)))
                continue
            old = existing[row.sku]
            if old == flat:
                unchanged += 1
                continue
            for name, before, after in zip(fields, old, flat, strict=True):
                if before != after:
                    audits.append((now, staff, "item_change", row.sku, name, _t(before), _t(after)))
            updates.append((*_db_values(flat), row.sku))
        cursor = db.cursor()
        cursor.executemany(
            "INSERT INTO item (sku, name, price, tax_code, cost, unit, active, kit, min_age) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            inserts,
        )
        cursor.executemany(
            "UPDATE item SET name = ?, price = ?, tax_code = ?, cost = ?, unit = ?, active = ?, "
            "kit = ?, min_age = ? WHERE sku = ?",
            updates,
        )
        cursor.executemany(
            "INSERT INTO audit (ts, staff, action, subject, field, old, new) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            audits,
        )
        cursor.executemany("DELETE FROM barcode WHERE sku = ?", [(r.sku,) for r in rows])
        barcodes = [(code, r.sku, pack) for r in rows for code, pack in r.barcodes.items()]
        cursor.executemany("INSERT INTO barcode (code, sku, pack_qty) VALUES (?, ?, ?)", barcodes)
        for row in rows:
            if row.components:
                catalog.set_kit_bom(ledger, row.sku, row.components, staff)
        audit.record(
            "catalog_import",
            staff,
            detail=f"{len(inserts)} added, {len(updates)} updated, {unchanged} unchanged",
        )
    return ImportResult(len(inserts), len(updates), unchanged, len(barcodes))


def _t(value: object) -> str | None:
    return None if value is None else str(value)


def _db_values(flat: tuple) -> tuple:
    name, price, tax, cost, unit, active, kit, min_age = flat
    return (name, str(price), tax, _t(cost), unit, int(active), kit, min_age)


def read_file(ledger: Ledger, path: Path) -> list[Row]:
    """Parse and check a catalog file (UTF-8, see read_rows)."""
    try:
        text = textfile.read_text(path)
    except FileNotFoundError:
        raise LedgerError(f"{path}: no such file") from None
    except OSError as exc:
        raise LedgerError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except textfile.TextFileError as exc:
        raise CatalogFileError(str(path), [str(exc).removeprefix(f"{path}: ")]) from None
    return read_rows(ledger, io.StringIO(text, newline=""), str(path))


def import_file(ledger: Ledger, path: Path, staff: str | None = None) -> ImportResult:
    return import_rows(ledger, read_file(ledger, path), staff)


def import_text(ledger: Ledger, text: str, staff: str | None = None) -> ImportResult:
    return import_rows(ledger, read_rows(ledger, io.StringIO(text), "<text>"), staff)


def _printable_code(ledger: Ledger, code: str) -> str:
    """The catalog form of a stored barcode key (see catalog.barcode_key)."""
    if len(code) == 14 and code.isdigit():
        if code.startswith("000000"):
            return code[6:]  # EAN-8
        return code[1:] if code[0] == "0" else code  # EAN-13 (UPC-A with a leading 0)
    for layout in ledger.config.barcodes.variable_measure:
        if code.startswith(layout.prefix) and len(code) == 2 + layout.item_digits:
            return variable_measure_code(layout, code[2:], Decimal(0))
    return ledger.config.barcodes.sku_prefix + code


def export(ledger: Ledger, stream: TextIO) -> int:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    codes: dict[str, list[str]] = {}
    for code, sku, pack in ledger.db.execute_sql(
        "SELECT code, sku, pack_qty FROM barcode ORDER BY sku, code"
    ):
        text = _printable_code(ledger, code)
        codes.setdefault(sku, []).append(text if pack == 1 else f"{text}*{pack}")
    count = 0
    for item in catalog.all_items():
        components = ""
        if item.kit:
            try:
                _, comps = catalog.current_bom(item.sku)
                components = ";".join(f"{c.component_id}*{c.qty}" for c in comps)
            except LedgerError:
                components = ""
        writer.writerow(
            [
                item.sku, item.name, item.price, item.tax_code, item.unit,
                "" if item.cost is None else item.cost, 1 if item.active else 0,
                ";".join(codes.get(item.sku, [])), item.kit, components, item.min_age,
            ]
        )  # fmt: skip
        count += 1
    return count
