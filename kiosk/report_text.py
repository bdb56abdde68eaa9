"""Plain-text rendering of reports for the terminal and the receipt printer."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from kiosk.config import Config
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
