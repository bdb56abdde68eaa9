"""Plain-text rendering of reports for the terminal and the receipt printer.

Lines are laid out for the configured printer's columns (`[printer] profile`,
`paper_mm`, `columns`): on a 58 mm printer the Z report is 32 columns wide and
every figure stays on the line of its label. It lives in the checkout layer, the lowest
that may read both the ledger's reports and the drivers' layout (neither imports the other).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from kiosk.config import Config
from kiosk.documents import Receipt
from kiosk.drivers.layout import pair, paper_from_config, receipt_ops, text_lines, text_paper, wrap
from kiosk.ledger.reports import ZReport


def money(amount: Decimal, config: Config) -> str:
    """An amount in the currency's minor unit, with its code: "1,234.50 EUR"."""
    return f"{amount.quantize(config.money.minor_unit):,} {config.money.currency}"


def printer_columns(config: Config) -> int:
    """Characters per line on the configured printer (font A)."""
    return paper_from_config(config.printer).columns


def z_report_lines(z: ZReport, config: Config, width: int | None = None) -> Iterator[str]:
    """The Z report, `width` columns wide (default: the configured printer's)."""
    width = width or printer_columns(config)

    def row(label: str, amount: Decimal, short: str | None = None) -> list[str]:
        text = money(amount, config)
        if short and len(label) + 1 + len(text) > width:
            label = short
        return pair(label, text, width)

    yield from wrap(f"Z report {z.day.isoformat()}  {config.device.store} / {config.device.id}",
                    width, "  ")  # fmt: skip
    yield from wrap(f"(local day; UTC {z.start:%Y-%m-%d %H:%M} to {z.end:%Y-%m-%d %H:%M})", width)
    yield "-" * width
    if not z.counts:
        yield from wrap("no sales, returns or voids", width)
    else:
        yield from wrap(f"receipts {z.first_receipt} .. {z.last_receipt}", width, "  ")
        yield from wrap("  ".join(f"{kind}s: {n}" for kind, n in sorted(z.counts.items())), width)
    yield from row("gross sales", z.gross_sales)
    yield from row("returns", z.returns)
    yield from row("voids", z.voids)
    yield from row("discounts given", z.discounts, "discounts")
    yield from row("cash rounding", z.rounding, "rounding")
    yield from row("net takings", z.net_total, "net")
    yield "-" * width
    yield from wrap("tenders (net of change and refunds)", width)
    for kind, amount in z.tenders.items():
        yield from row(f"  {kind}", amount)
    yield from wrap("tax per rate", width)
    for code, (rate, net, tax) in z.taxes.items():
        pct = f"{rate * 100:.2f}".rstrip("0").rstrip(".")
        name = f"  {code} {pct}%"
        net_text, tax_text = money(net, config), money(tax, config)
        both = f"{name} net {net_text}  tax {tax_text}"
        if len(both) <= width:
            yield both
        else:
            yield from pair(f"{name} net", net_text, width)
            yield from pair(f"{name} tax", tax_text, width)
    yield "-" * width
    yield from row("opening float", z.opening_float, "float")
    yield from row("cash expected in drawer", z.cash_expected, "cash expected")


def receipt_lines(receipt: Receipt, width: int = 42) -> Iterator[str]:
    """A receipt as monospaced text: the terminal demo and the replay tool print this.
    The same layout as the paper, without code pages (a terminal prints Unicode)."""
    yield from text_lines(receipt_ops(receipt, text_paper(width)), width)
