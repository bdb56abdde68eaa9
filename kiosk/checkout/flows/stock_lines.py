"""The lines of a count or a delivery, shared by counting.py and receiving.py.

A scan adds what it stands for (one piece, a whole case, a label's weight) to its
item's line and selects that line; the numeric pad then replaces the selected line's
quantity with what staff typed (234 bottles on a shelf are one scan and "234", not
234 scans). Quantities are kept in stock base units (pieces, or grams for weighed
items) and typed in the item's own unit (pieces, or kg). Both flows' mixins inherit
`StockLinesMixin`, so its methods act on whichever of the two is open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from kiosk import i18n, numbers
from kiosk.checkout.core import Outcome, State, _sentence
from kiosk.i18n import _
from kiosk.ledger import catalog, sales, stock
from kiosk.ledger.barcodes import Gs1Element, Gtin, Parsed, VariableMeasure
from kiosk.ledger.core import LedgerError
from kiosk.ledger.models import Item

GRAMS = 1000  # base units in one kg
MAX_KG = Decimal(numbers.MAX_STOCK_QTY) / GRAMS  # the pad's bound for a weighed line


@dataclass(frozen=True)
class Amount:
    """Base units as their reader writes them: `234`, `1,5 kg`; `+3` when signed."""

    units: int
    unit: str  # each or kg
    signed: bool = False

    def localize(self, locale: str) -> str:
        if self.unit == "kg":
            text = i18n.format_weight(Decimal(self.units) / GRAMS, locale)
        else:
            text = i18n.format_number(self.units, locale)
        return f"+{text}" if self.signed and self.units > 0 else text


def in_item_unit(units: int, unit: str) -> str:
    """Base units as plain decimal text in the item's unit: 234, 1.5 (kg)."""
    if unit != "kg":
        return str(units)
    return format((Decimal(units) / GRAMS).normalize(), "f")


@dataclass(frozen=True)
class StockScan:
    """What one scan adds to a line: base units (None: staff type them on the pad)."""

    item: Item
    units: int | None
    pack: int = 1  # pieces in one case (1: not a case)
    cases: int = 0  # cases in this scan
    unknown_pack: bool = False  # a case GTIN-14 not in the item master


def resolve(parsed: Parsed) -> StockScan:
    """The item and the base units a barcode stands for in a count or a delivery."""
    try:
        scanned = catalog.resolve_scan(parsed)
    except LedgerError as unknown:
        inner = getattr(parsed, "contained_gtin", None)
        if not inner:
            raise
        # a case GTIN-14 (indicator 1-8) the item master does not list: the item inside
        # is known by its own GTIN, how many the case holds is not.
        try:
            item = catalog.resolve_scan(Gtin(inner, "EAN-13")).item
        except LedgerError:
            raise unknown from None  # what was scanned is unknown, not the GTIN inside
        return StockScan(item, None, unknown_pack=True)
    item = scanned.item
    if item.unit == "kg":
        weighed = scanned.amount is None and (
            (isinstance(parsed, VariableMeasure) and parsed.kind == "weight")
            or (isinstance(parsed, Gs1Element) and parsed.weight_kg is not None)
        )
        return StockScan(item, sales.base_units("kg", scanned.qty, item.sku) if weighed else None)
    units = sales.base_units("each", scanned.qty, item.sku)
    cases = (parsed.count or 1) if isinstance(parsed, Gs1Element) else 1
    pack = units // cases if cases else units
    if pack > 1 and isinstance(parsed, Gtin | Gs1Element):
        return StockScan(item, units, pack, cases)
    return StockScan(item, units)


class LineError(ValueError):
    """A typed quantity that cannot be used; its argument is the one-line Message."""


def typed_units(item: Item, value: object, minimum: int = 0) -> int:
    """A quantity typed on the pad in the item's unit (pieces, or kg to the gram), as
    base units within 0 (or `minimum`) .. MAX_STOCK_QTY; LineError says why not."""
    kg = item.unit == "kg"
    wide = Decimal(10) ** numbers.MAX_TEXT  # any number of the digits' own bounds
    try:
        qty = numbers.decimal(value, "quantity", minimum=-wide, maximum=wide, places=99)
    except numbers.NumberError:
        raise LineError(_("{name}: type the quantity in digits", name=item.name)) from None
    scale = GRAMS if kg else 1
    if not minimum <= qty * scale <= numbers.MAX_STOCK_QTY:
        low, high = Amount(minimum, item.unit), Amount(numbers.MAX_STOCK_QTY, item.unit)
        raise LineError(
            _(
                "{name}: the quantity must be from {low} to {high}",
                name=item.name,
                low=low,
                high=high,
            )
        )
    if (qty * scale) != (qty * scale).to_integral_value():
        if kg:
            raise LineError(_("{name}: a weight has at most 3 decimals (grams)", name=item.name))
        raise LineError(_("{name} is counted in whole pieces", name=item.name))
    return int(qty * scale)


@dataclass
class StockLines:
    """Base units per SKU (the order the lines were last scanned in), each line's item
    name and unit, the cases scanned into it, and the line the pad sets."""

    qty: dict[str, int] = field(default_factory=dict)
    items: dict[str, tuple[str, str]] = field(default_factory=dict)  # sku -> name, unit
    cases: dict[str, dict[int, int]] = field(default_factory=dict)  # sku -> {pack: cases}
    selected: str | None = None

    def know(self, item: Item) -> None:
        self.items[item.sku] = (item.name, item.unit)

    def name(self, sku: str) -> str:
        return self.items.get(sku, (sku, "each"))[0]

    def unit(self, sku: str) -> str:
        return self.items.get(sku, (sku, "each"))[1]

    def add(self, sku: str, units: int, pack: int = 1, cases: int = 0) -> None:
        """A scan: its units added, the line moved to the end (the newest) and selected."""
        self.qty[sku] = self.qty.pop(sku, 0) + units
        if cases:
            packs = self.cases.setdefault(sku, {})
            packs[pack] = packs.get(pack, 0) + cases
        self.selected = sku

    def set(self, sku: str, units: int) -> None:
        """A typed quantity replaces the line's (and what cases it was scanned as)."""
        self.qty[sku] = units
        self.cases.pop(sku, None)
        self.selected = sku

    def remove(self, sku: str) -> None:
        del self.qty[sku]
        self.cases.pop(sku, None)
        if self.selected == sku:
            self.selected = next(reversed(self.qty), None)

    def full(self, sku: str) -> bool:
        return sku not in self.qty and len(self.qty) >= numbers.MAX_EVENT_LINES

    def view(self, sku: str) -> dict:
        unit = self.unit(sku)
        return {
            "sku": sku,
            "name": self.name(sku),
            "unit": unit,
            "qty": in_item_unit(self.qty.get(sku, 0), unit),
            "on_list": sku in self.qty,
            "cases": [{"pack": p, "cases": n} for p, n in sorted(self.cases.get(sku, {}).items())],
        }


class StockLinesMixin:
    """The pad and the line list of the open count or delivery."""

    def _stock_flow(self) -> tuple[str, StockLines] | None:
        """("count" or "receive", its lines) while one of the two is open."""
        if self.state == State.COUNTING and self.counting is not None:
            return "count", self.counting.lines
        if self.state == State.RECEIVING and self.receiving is not None:
            return "receive", self.receiving.lines
        return None

    def _item(self, sku: str) -> Item:
        return catalog.get_item(sku)

    def _stock_scan(self, parsed: Parsed) -> Outcome:
        kind, lines = self._stock_flow()
        try:
            scan = resolve(parsed)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        item = scan.item
        if lines.full(item.sku):
            return self._no(self._full_text(kind))
        lines.know(item)
        if scan.units is None:  # staff type the quantity: nothing is added before that
            lines.selected = item.sku
            if scan.unknown_pack:
                return self._ok(
                    _(
                        "{name}: this case is not in the item master: type the pieces on the pad",
                        name=item.name,
                    )
                )
            return self._ok(_("{name} is weighed: type the kilograms on the pad", name=item.name))
        if lines.qty.get(item.sku, 0) + scan.units > numbers.MAX_STOCK_QTY:
            high = Amount(numbers.MAX_STOCK_QTY, item.unit)
            return self._no(_("{name}: at most {high} on one line", name=item.name, high=high))
        lines.add(item.sku, scan.units, scan.pack, scan.cases)
        self._line_changed(kind, item.sku)
        return self._ok(self._line_text(kind, item.sku, scan))

    def select_stock_line(self, sku: str) -> Outcome:
        """Staff tap a line of the count or delivery: the pad sets that line next."""
        self._record({"select_line": sku})
        found = self._listed(sku)
        if isinstance(found, Outcome):
            return found
        _kind, lines = found
        lines.selected = sku
        return self._ok(_("{name}: type the quantity", name=lines.name(sku)))

    def set_stock_line(self, sku: str, qty: object) -> Outcome:
        """The pad's OK: the line's quantity becomes `qty`, typed in the item's unit
        (pieces, or kg). A count may be 0 (an empty shelf); 0 received removes the line."""
        self._record({"line_qty": {"sku": sku, "qty": str(qty)}})
        found = self._stock_flow()
        if found is None:
            return self._no(_("Start a count or receiving first"))
        kind, lines = found
        try:
            item = catalog.get_item(sku)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        try:
            units = typed_units(item, qty)
        except LineError as exc:
            return self._no(exc.args[0])
        if kind == "receive" and units == 0 and sku in lines.qty:
            return self._remove_stock_line(kind, lines, sku)
        if kind == "receive" and units == 0:
            return self._no(_("{name}: nothing to receive", name=item.name))
        if lines.full(sku):
            return self._no(self._full_text(kind))
        lines.know(item)
        lines.set(sku, units)
        self._line_changed(kind, sku)
        return self._ok(self._line_text(kind, sku))

    def remove_stock_line(self, sku: str) -> Outcome:
        """Take a line off the count or delivery (nothing of it is posted)."""
        self._record({"remove_sku": sku})
        found = self._listed(sku)
        if isinstance(found, Outcome):
            return found
        return self._remove_stock_line(*found, sku)

    def _listed(self, sku: str) -> tuple[str, StockLines] | Outcome:
        """The open count or delivery holding `sku`, or the refusal saying why not."""
        found = self._stock_flow()
        if found is None:
            return self._no(_("Start a count or receiving first"))
        if sku not in found[1].qty:
            return self._no(_("{sku} is not on the list", sku=sku))
        return found

    def _remove_stock_line(self, kind: str, lines: StockLines, sku: str) -> Outcome:
        name = lines.name(sku)
        lines.remove(sku)
        if kind == "count":
            self.counting.moments.pop(sku, None)
            self.counting.expected.pop(sku, None)
        return self._ok(_("Removed {name}", name=name))

    def _line_text(self, kind: str, sku: str, scan: StockScan | None = None) -> i18n.Message:
        """What a line holds now, after a scan (with its case) or a typed quantity."""
        lines = self._stock_flow()[1]
        name, unit = lines.name(sku), lines.unit(sku)
        qty = Amount(lines.qty[sku], unit)
        case = scan is not None and scan.pack > 1
        if kind == "receive":
            if case:
                return _(
                    "{name}: a case of {pack}, {qty} received", name=name, pack=scan.pack, qty=qty
                )
            return _("{name}: {qty} received", name=name, qty=qty)
        if self.config.checkout.blind_counts:
            if case:
                return _(
                    "{name}: a case of {pack}, {qty} counted", name=name, pack=scan.pack, qty=qty
                )
            return _("{name}: {qty} counted", name=name, qty=qty)
        expected = Amount(self.counting.expected[sku], unit)
        difference = Amount(lines.qty[sku] - self.counting.expected[sku], unit, signed=True)
        if case:
            return _(
                "{name}: a case of {pack}, {qty} counted (expected {expected}, {difference})",
                name=name, pack=scan.pack, qty=qty, expected=expected, difference=difference,
            )  # fmt: skip
        return _(
            "{name}: {qty} counted (expected {expected}, {difference})",
            name=name, qty=qty, expected=expected, difference=difference,
        )  # fmt: skip

    def _full_text(self, kind: str) -> i18n.Message:
        most = str(numbers.MAX_EVENT_LINES)
        if kind == "receive":
            return _("A delivery holds at most {n} items: finish it, then start another", n=most)
        return _("A count holds at most {n} items: finish it, then start another", n=most)

    def _line_changed(self, kind: str, sku: str) -> None:
        """A count notes when each line was counted and what the ledger expected then
        (what the posting will adjust against: stock.count)."""
        if kind == "count":
            moment = self.clock()
            self.counting.moments[sku] = moment
            if not self.config.checkout.blind_counts:
                self.counting.expected[sku] = stock.expected_at(sku, moment)

    def snapshot(self) -> dict:
        """The core's snapshot plus `stock_lines`: the open count's or delivery's lines
        for the screen, newest first, with (counts, unless blind) expected and difference."""
        snap = super().snapshot()
        found = self._stock_flow()
        if found is None:
            snap["stock_lines"] = None
            return snap
        kind, lines = found
        blind = kind == "count" and self.config.checkout.blind_counts
        shown = []
        for sku in reversed(lines.qty):
            line = lines.view(sku)
            expected = self.counting.expected.get(sku) if kind == "count" and not blind else None
            if expected is not None:
                line["expected"] = in_item_unit(expected, line["unit"])
                line["difference"] = in_item_unit(lines.qty[sku] - expected, line["unit"])
            shown.append(line)
        selected = lines.selected
        snap["stock_lines"] = {
            "kind": kind,
            "blind": blind,
            "selected": lines.view(selected) if selected in lines.items else None,
            "lines": shown,
        }
        return snap
