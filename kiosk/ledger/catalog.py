"""Item master: items, their barcodes, kit BOM versions, and audited changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from kiosk import i18n
from kiosk.ledger import audit
from kiosk.ledger.barcodes import (
    BarcodeError,
    Gs1Element,
    Gtin,
    InternalSku,
    Parsed,
    VariableMeasure,
)
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.models import Barcode, Item, KitBom, KitComponent, TxnLine, utc_now

UNITS = ("each", "kg")
KIT_KINDS = ("", "bundle", "assembled")
AUDITED_FIELDS = ("name", "price", "tax_code", "cost", "unit", "active", "kit", "min_age")


@dataclass(frozen=True)
class ScannedItem:
    """What a scan resolved to: the item, how many units, and any embedded amount."""

    item: Item
    qty: Decimal
    barcode: str
    amount: Decimal | None = None  # price-embedded total
    lot: str | None = None


def get_item(sku: str) -> Item:
    item = Item.get_or_none(Item.sku == sku)
    if item is None:
        raise LedgerError(i18n._("unknown item {sku!r}", sku=sku))
    return item


def resolve_scan(parsed: Parsed) -> ScannedItem:
    """Item and quantity for a parsed item barcode (not receipts or staff badges)."""
    if isinstance(parsed, VariableMeasure):
        item, pack = _by_code(parsed.key)
        if parsed.kind == "price":
            return ScannedItem(item, Decimal(1), parsed.key, amount=parsed.value)
        return ScannedItem(item, parsed.value, parsed.key)
    if isinstance(parsed, Gs1Element):
        if parsed.gtin is None:
            raise LedgerError(i18n._("GS1 code without a GTIN (01) or (02)"))
        item, pack = _by_code(parsed.gtin)
        if parsed.weight_kg is not None:
            qty = parsed.weight_kg
        else:
            qty = Decimal(pack * (parsed.count or 1))
        return ScannedItem(item, qty, parsed.gtin, amount=parsed.price, lot=parsed.batch)
    if isinstance(parsed, Gtin) and parsed.alt:
        try:
            item, pack = _by_code(parsed.key)
        except LedgerError:
            item, pack = _by_code(parsed.alt)  # the UPC-E reading of an 8-digit code
            return ScannedItem(item, Decimal(pack), parsed.alt)
        return ScannedItem(item, Decimal(pack), parsed.key)
    if isinstance(parsed, Gtin | InternalSku):
        item, pack = _by_code(parsed.key)
        return ScannedItem(item, Decimal(pack), parsed.key)
    raise LedgerError(i18n._("not an item barcode: {kind}", kind=type(parsed).__name__))


def _by_code(code: str) -> tuple[Item, int]:
    row = Barcode.select(Barcode, Item).join(Item).where(Barcode.code == code).first()
    if row is not None:
        item, pack = row.item, row.pack_qty
    else:
        item, pack = Item.get_or_none(Item.sku == code), 1  # internal SKU codes
        if item is None:
            raise LedgerError(i18n._("unknown item (barcode {code})", code=code))
    if not item.active:
        raise LedgerError(
            i18n._("item {sku} ({name}) is no longer sold", sku=item.sku, name=item.name)
        )
    return item, pack


def barcode_key(ledger: Ledger, code: str) -> str:
    """The stored key for a barcode as written in the catalog (GTIN-14 or scale key)."""
    parsed = ledger.parser.parse(code)
    if isinstance(parsed, Gtin | InternalSku):
        return parsed.key
    if isinstance(parsed, VariableMeasure):
        if parsed.value:
            raise BarcodeError(code, i18n._("a scale code in the catalog must carry a zero value"))
        return parsed.key
    raise BarcodeError(code, i18n._("not an item barcode"))


def search(text: str, limit: int = 20) -> list[Item]:
    """Active items whose name or SKU contains `text` (item lookup on the screens)."""
    pattern = f"%{text.strip()}%"
    return list(
        Item.select()
        .where(Item.active & (Item.name**pattern | Item.sku**pattern))
        .order_by(Item.name)
        .limit(limit)
    )


def update_item(ledger: Ledger, sku: str, staff: str | None, **changes) -> Item:
    """Change item fields; every changed value is audited with old and new."""
    unknown = set(changes) - set(AUDITED_FIELDS)
    if unknown:
        raise LedgerError(i18n._("cannot change {choices}", choices=", ".join(sorted(unknown))))
    with ledger.transaction():
        item = get_item(sku)
        from kiosk.ledger.catalog_csv import refuse_owned  # noqa: PLC0415 - imports this module

        refuse_owned(ledger, [sku])
        validate_item_values(ledger, changes)
        dirty = {}
        for name, value in changes.items():
            old = getattr(item, name)
            if old != value:
                audit.record("item_change", staff, sku, name, old, value)
                dirty[name] = value
        if dirty:
            Item.update(**dirty).where(Item.sku == sku).execute()
        return get_item(sku)


def validate_item_values(ledger: Ledger, values: Mapping[str, object]) -> None:
    if "price" in values and (values["price"] is None or values["price"] < 0):
        raise LedgerError(i18n._("price must be zero or more"))
    if "price" in values and values["price"] != values["price"].quantize(ledger.policy.unit):
        raise LedgerError(i18n._("price {price} is finer than the currency", price=values["price"]))
    if "tax_code" in values and values["tax_code"] not in ledger.policy.rates:
        raise LedgerError(i18n._("unknown tax category {code!r}", code=values["tax_code"]))
    if "unit" in values and values["unit"] not in UNITS:
        raise LedgerError(i18n._("unit must be one of {choices}", choices=", ".join(UNITS)))
    if "kit" in values and values["kit"] not in KIT_KINDS:
        raise LedgerError(i18n._("kit must be empty, bundle or assembled"))


# ---------------------------------------------------------------- kits


def current_bom(kit_sku: str) -> tuple[KitBom, list[KitComponent]]:
    bom = KitBom.select().where(KitBom.kit == kit_sku).order_by(KitBom.version.desc()).first()
    if bom is None:
        raise LedgerError(i18n._("kit {kit_sku} has no bill of materials", kit_sku=kit_sku))
    return bom, list(KitComponent.select().where(KitComponent.bom == bom))


def bom_components(bom_id: int) -> list[KitComponent]:
    return list(KitComponent.select().where(KitComponent.bom == bom_id))


def bom_in_use(bom: KitBom) -> bool:
    """Sales, returns and kit builds all record the version on their lines."""
    return TxnLine.select().where(TxnLine.bom == bom).exists()


def set_kit_bom(
    ledger: Ledger, kit_sku: str, components: Mapping[str, int], staff: str | None
) -> KitBom:
    """Define a kit's components. A version used by a posting is immutable: changing
    it makes the next version; an unused latest version is edited in place."""
    if not components:
        raise LedgerError(i18n._("a kit needs at least one component"))
    with ledger.transaction():
        kit = get_item(kit_sku)
        if not kit.kit:
            raise LedgerError(i18n._("{kit_sku} is not a kit item", kit_sku=kit_sku))
        for sku, qty in components.items():
            if sku == kit_sku:
                raise LedgerError(i18n._("a kit cannot contain itself"))
            if get_item(sku).kit:
                raise LedgerError(
                    i18n._("component {sku} is itself a kit; nest kits by assembly", sku=sku)
                )
            if not isinstance(qty, int) or qty <= 0:
                raise LedgerError(
                    i18n._("component {sku} needs a whole quantity above zero", sku=sku)
                )
        latest = (
            KitBom.select().where(KitBom.kit == kit_sku).order_by(KitBom.version.desc()).first()
        )
        wanted = dict(sorted(components.items()))
        if latest is not None:
            have = {c.component_id: c.qty for c in bom_components(latest.id)}
            if have == wanted:
                return latest
        if latest is not None and not bom_in_use(latest):
            bom = latest
            KitComponent.delete().where(KitComponent.bom == bom).execute()
        else:
            version = latest.version + 1 if latest else 1
            bom = KitBom.create(
                kit=kit_sku, version=version, created_at=utc_now(), created_by=staff
            )
        KitComponent.insert_many(
            [{"bom": bom.id, "component": sku, "qty": qty} for sku, qty in wanted.items()]
        ).execute()
        audit.record("kit_bom", staff, kit_sku, "version", None, bom.version, _bom_text(wanted))
        return bom


def _bom_text(components: Mapping[str, int]) -> str:
    return ";".join(f"{sku}*{qty}" for sku, qty in components.items())


def all_items(skus: Iterable[str] | None = None) -> list[Item]:
    query = Item.select().order_by(Item.sku)
    if skus is not None:
        query = query.where(Item.sku.in_(list(skus)))
    return list(query)
