"""The cart of a session: lines as the customer sees them, priced with the ledger's rules."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from kiosk import i18n
from kiosk.ledger.money import ZERO, LineInput, PricedCart, TaxPolicy, price_cart
from kiosk.ledger.sales import SaleLine


@dataclass(frozen=True)
class CartLine:
    sku: str
    name: str
    unit: str  # each or kg
    qty: Decimal
    price: Decimal  # the unit price charged (the item's, or an override)
    list_price: Decimal  # the item's own price
    tax_code: str
    barcode: str | None = None
    amount: Decimal | None = None  # price-embedded label
    discount: Decimal = ZERO
    lot: str | None = None
    min_age: int = 0
    approved: bool = True  # False: an age-restricted item waiting for staff

    @classmethod
    def from_item(cls, item, qty: Decimal, barcode=None, amount=None, lot=None) -> CartLine:
        """A line for an item at its own price; age-restricted items wait for staff."""
        return cls(
            sku=item.sku,
            name=item.name,
            unit=item.unit,
            qty=qty,
            price=item.price,
            list_price=item.price,
            tax_code=item.tax_code,
            barcode=barcode,
            amount=amount,
            lot=lot,
            min_age=item.min_age,
            approved=item.min_age <= 0,
        )

    def merges_with(self, other: CartLine) -> bool:
        """A repeat scan adds quantity to the same line (not for weighed or priced labels)."""
        return (
            self.sku == other.sku
            and self.unit == "each"
            and self.amount is None
            and other.amount is None
            and self.price == other.price
            and self.lot == other.lot
        )

    def to_sale_line(self) -> SaleLine:
        return SaleLine(
            self.sku,
            self.qty,
            price=self.price if self.price != self.list_price else None,
            discount=self.discount,
            amount=self.amount,
            barcode=self.barcode,
            lot=self.lot,
        )


class Cart:
    def __init__(self, policy: TaxPolicy):
        self.policy = policy
        self.lines: list[CartLine] = []
        self._priced: tuple[tuple[CartLine, ...], PricedCart] | None = None

    def __bool__(self) -> bool:
        return bool(self.lines)

    def add(self, line: CartLine) -> int:
        """Add or merge; returns the 1-based line number touched."""
        for index, existing in enumerate(self.lines):
            if existing.merges_with(line):
                self.lines[index] = replace(existing, qty=existing.qty + line.qty)
                return index + 1
        self.lines.append(line)
        return len(self.lines)

    def line(self, number: int) -> CartLine:
        if not 1 <= number <= len(self.lines):
            raise IndexError(i18n._("there is no line {number}", number=str(number)))
        return self.lines[number - 1]

    def update(self, number: int, **changes) -> CartLine:
        self.lines[number - 1] = replace(self.line(number), **changes)
        return self.lines[number - 1]

    def remove(self, number: int) -> CartLine:
        line = self.line(number)
        del self.lines[number - 1]
        return line

    def clear(self) -> None:
        self.lines.clear()

    def priced(self) -> PricedCart:
        """The cart priced; remembered until a line changes (a scan asks for it from the
        limit check, the message and the screen's snapshot). Lines are frozen, so equal
        lines price the same: the key is the lines themselves, safe against any edit."""
        key = tuple(self.lines)
        if self._priced is None or self._priced[0] != key:
            inputs = [
                LineInput(li.sku, li.qty, li.price, li.tax_code, li.discount, li.amount)
                for li in key
            ]
            self._priced = (key, price_cart(inputs, self.policy))
        return self._priced[1]

    @property
    def waiting_for_approval(self) -> list[CartLine]:
        return [li for li in self.lines if not li.approved]
