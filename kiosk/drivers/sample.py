"""A sample receipt for print tests and previews (no ledger needed)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from kiosk import i18n
from kiosk.config import Config
from kiosk.documents import Receipt, ReceiptLine, TaxLine, TenderLine


def sample_receipt(config: Config) -> Receipt:
    """In the shop's language ([ui] language), as its real receipts print."""
    gettext = i18n.translator(config.ui.language).gettext
    number = f"{config.device.id}-000000"
    return Receipt(
        store=config.device.store,
        device=config.device.id,
        number=number,
        kind="sale",
        when=datetime.now().astimezone(),
        currency=config.money.currency,
        lines=(
            ReceiptLine(
                gettext("Printer test line"),
                Decimal(2),
                "each",
                Decimal("1.00"),
                Decimal("2.00"),
                "A",
            ),
            ReceiptLine(
                gettext("Weighed item"),
                Decimal("0.532"),
                "kg",
                Decimal("1.99"),
                Decimal("1.06"),
                "B",
            ),
        ),  # fmt: skip
        taxes=(
            TaxLine("A", Decimal("0.19"), Decimal("1.68"), Decimal("0.32")),
            TaxLine("B", Decimal("0.07"), Decimal("0.99"), Decimal("0.07")),
        ),
        tenders=(TenderLine("cash", Decimal("5.00")),),
        total=Decimal("3.06"),
        rounding=Decimal("-0.01"),
        change=Decimal("1.95"),
        barcode=config.barcodes.receipt_prefix + number,
        header=tuple(config.checkout.receipt_header)
        or (config.device.store, gettext("PRINT TEST")),
        footer=(gettext("Printer test: barcode and QR below should scan"),),
        qr=f"{config.barcodes.receipt_prefix}{number}",
        language=config.ui.language,
    )
