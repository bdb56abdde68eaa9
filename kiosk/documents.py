"""Printable documents as plain data: receipts, kit labels and text reports.

The checkout builds them from the ledger; printer drivers render them (ESC/POS,
PNG previews). This module depends on nothing else in the project, so drivers can
use it without reaching into the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal


@dataclass(frozen=True)
class ReceiptLine:
    name: str
    qty: Decimal
    unit: str  # "each" or "kg"
    unit_price: Decimal
    total: Decimal
    tax_code: str
    discount: Decimal = Decimal(0)
    note: str | None = None  # "returned", "lot L42", ...


@dataclass(frozen=True)
class TaxLine:
    code: str
    rate: Decimal
    net: Decimal
    tax: Decimal


@dataclass(frozen=True)
class TenderLine:
    kind: str
    amount: Decimal
    reference: str | None = None


@dataclass(frozen=True)
class Receipt:
    """One customer document: sale, return, void or exchange."""

    store: str
    device: str
    number: str
    kind: str
    when: datetime  # local time, as printed
    currency: str
    lines: tuple[ReceiptLine, ...]
    taxes: tuple[TaxLine, ...]
    tenders: tuple[TenderLine, ...]
    total: Decimal
    rounding: Decimal
    change: Decimal
    barcode: str  # Code 128 payload for returns
    staff: str | None = None
    header: tuple[str, ...] = ()
    footer: tuple[str, ...] = ("Thank you!",)
    qr: str | None = None
    reprint: bool = False
    logo: str | None = None  # path of a PNG for the top of the receipt
    language: str = "en"  # the shop's language ([ui] language): words, numbers, dates


@dataclass(frozen=True)
class KitLabel:
    kit_sku: str
    name: str
    barcode: str  # what the kit's barcode encodes
    bom_version: int
    assembled: date
    lot: str | None
    contents: tuple[tuple[str, int], ...]  # component name, quantity
    language: str = "en"  # the shop's language ([ui] language)


@dataclass(frozen=True)
class TextReport:
    title: str
    lines: tuple[str, ...] = field(default=())
