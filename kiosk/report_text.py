"""Plain-text rendering of reports for the terminal and the receipt printer."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from kiosk.config import Config
from kiosk.documents import Receipt
from kiosk.ledger.reports import ZReport


def money(amount: Decimal, config: Config) -> str:
    """An amount in the currency's minor unit, with its code: "1,234.50 EUR"."""
    return f"{amount.quantize(config.money.minor_unit):,} {config.money.currency}"


def z_report_lines(z: ZReport, config: Config) -> Iterator[str]:
    width = 44

    def row(label: str, amount: Decimal) -> str:
        text = money(amount, config)
        return f"{label:<{width - len(text)}}{text}"

    yield f"Z report {z.day.isoformat()}  {config.device.store} / {config.device.id}"
    yield f"(local day; UTC {z.start:%Y-%m-%d %H:%M} to {z.end:%Y-%m-%d %H:%M})"
    yield "-" * width
    if not z.counts:
        yield "no sales, returns or voids"
    else:
        yield f"receipts {z.first_receipt} .. {z.last_receipt}"
        yield "  ".join(f"{kind}s: {n}" for kind, n in sorted(z.counts.items()))
    yield row("gross sales", z.gross_sales)
    yield row("returns", z.returns)
    yield row("voids", z.voids)
    yield row("discounts given", z.discounts)
    yield row("cash rounding", z.rounding)
    yield row("net takings", z.net_total)
    yield "-" * width
    yield "tenders (net of change and refunds)"
    for kind, amount in z.tenders.items():
        yield row(f"  {kind}", amount)
    yield "tax per rate                 net        tax"
    for code, (rate, net, tax) in z.taxes.items():
        pct = f"{rate * 100:.2f}".rstrip("0").rstrip(".")
        yield f"  {code} {pct + '%':<8} {net:>18,} {tax:>10,}"
    yield "-" * width
    yield row("opening float", z.opening_float)
    yield row("cash expected in drawer", z.cash_expected)


def receipt_lines(receipt: Receipt, width: int = 42) -> Iterator[str]:
    """A receipt as monospaced text: the terminal demo and the replay tool print this."""

    def amount(value: Decimal) -> str:
        return f"{value:,}"

    def row(left: str, right: str) -> str:
        room = width - len(right) - 1
        return f"{left[:room]:<{room}} {right}"

    for text in receipt.header or (receipt.store,):
        yield f"{text:^{width}}".rstrip()
    title = {"sale": "", "return": "RETURN", "void": "VOID", "exchange": "EXCHANGE"}[receipt.kind]
    if receipt.reprint:
        title = (title + " REPRINT").strip()
    if title:
        yield f"{title:^{width}}".rstrip()
    yield row(f"{receipt.when:%Y-%m-%d %H:%M}", receipt.number)
    yield "-" * width
    for line in receipt.lines:
        yield row(line.name, amount(line.total) + " " + line.tax_code)
        if line.qty != 1 or line.unit == "kg":
            unit = " kg" if line.unit == "kg" else ""
            yield f"  {line.qty}{unit} x {line.unit_price}"
        if line.discount:
            yield f"  discount -{line.discount}"
        if line.note:
            yield f"  {line.note}"
    yield "-" * width
    yield row("TOTAL " + receipt.currency, amount(receipt.total))
    if receipt.rounding:
        yield row("cash rounding", amount(receipt.rounding))
    for tender in receipt.tenders:
        ref = f" ({tender.reference})" if tender.reference else ""
        yield row(tender.kind + ref, amount(tender.amount))
    if receipt.change:
        yield row("change", amount(receipt.change))
    for tax in receipt.taxes:
        pct = f"{tax.rate * 100:.2f}".rstrip("0").rstrip(".")
        yield row(f"{tax.code} {pct}% of {tax.net + tax.tax}", "tax " + amount(tax.tax))
    yield f"[{receipt.barcode}]".center(width).rstrip()
    for text in receipt.footer:
        yield f"{text:^{width}}".rstrip()
