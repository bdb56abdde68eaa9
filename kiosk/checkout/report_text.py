"""Plain-text rendering of reports for the terminal and the receipt printer.

Lines are laid out for the configured printer's columns (`[printer] profile`,
`paper_mm`, `columns`): on a 58 mm printer the Z report is 32 columns wide and
every figure stays on the line of its label. It lives in the checkout layer, the lowest
that may read both the ledger's reports and the drivers' layout (neither imports the other).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from kiosk import i18n
from kiosk.config import Config
from kiosk.documents import Receipt
from kiosk.i18n import N_
from kiosk.ledger.reports import ZReport

# The Z report's counts per kind of transaction (other kinds: "<kind>s: <n>").
COUNTS = {
    "sale": N_("sales: {n}"),
    "return": N_("returns: {n}"),
    "void": N_("voids: {n}"),
    "exchange": N_("exchanges: {n}"),
}


def money(amount: Decimal, config: Config) -> str:
    """An amount in the currency's minor unit, with its code: "1,234.50 EUR"."""
    return f"{amount.quantize(config.money.minor_unit):,} {config.money.currency}"


def money_arg(amount: Decimal, config: Config) -> i18n.Money:
    """An amount for a checkout message: English keeps `money()`'s "1,234.50 EUR",
    other languages write it their way ("1.234,50 €")."""
    value = amount.quantize(config.money.minor_unit)
    return i18n.Money(value, config.money.currency, money(amount, config))


def printer_columns(config: Config) -> int:
    """Characters per line on the configured printer (font A)."""
    from kiosk.drivers.layout import paper_from_config  # noqa: PLC0415 - printing only

    return paper_from_config(config.printer).columns


def z_report_lines(
    z: ZReport, config: Config, width: int | None = None, language: str | None = None
) -> Iterator[str]:
    """The Z report, `width` columns wide (default: the configured printer's), in the
    shop's language (`[ui] language`): its words from the catalogs, its figures
    formatted by Babel with the currency's code ("1.234,50 EUR" in German)."""
    from kiosk.drivers.layout import TENDERS, pair, wrap  # noqa: PLC0415 - printing only

    width = width or printer_columns(config)
    lang = language or config.ui.language
    gettext, pgettext = i18n.translator(lang).gettext, i18n.translator(lang).pgettext

    def figure(amount: Decimal) -> str:
        return i18n.format_money_code(amount, config.money.currency, lang)

    def row(label: str, amount: Decimal, short: str | None = None) -> list[str]:
        text = figure(amount)
        if short and len(label) + 1 + len(text) > width:
            label = short
        return pair(label, text, width)

    title = gettext("Z report {day}  {store} / {device}").format(
        day=i18n.format_date(z.day, lang), store=config.device.store, device=config.device.id
    )
    yield from wrap(title, width, "  ")
    span = gettext("(local day; UTC {start} to {end})").format(
        start=f"{z.start:%Y-%m-%d %H:%M}", end=f"{z.end:%Y-%m-%d %H:%M}"
    )
    yield from wrap(span, width)
    yield "-" * width
    if not z.counts:
        yield from wrap(gettext("no sales, returns or voids"), width)
    else:
        receipts = gettext("receipts {first} .. {last}")
        yield from wrap(receipts.format(first=z.first_receipt, last=z.last_receipt), width, "  ")
        counts = [
            gettext(COUNTS.get(kind, "{kind}s: {n}")).format(
                kind=kind, n=i18n.format_number(n, lang)
            )
            for kind, n in sorted(z.counts.items())
        ]
        yield from wrap("  ".join(counts), width)
    yield from row(gettext("gross sales"), z.gross_sales)
    yield from row(gettext("returns"), z.returns)
    yield from row(gettext("voids"), z.voids)
    yield from row(gettext("discounts given"), z.discounts, gettext("discounts"))
    yield from row(gettext("cash rounding"), z.rounding, gettext("rounding"))
    # the short label when the line is narrow: "net" as in net takings, not a tax base
    yield from row(gettext("net takings"), z.net_total, pgettext("Z report", "net"))
    yield "-" * width
    yield from wrap(gettext("tenders (net of change and refunds)"), width)
    for kind, amount in z.tenders.items():
        yield from row(f"  {gettext(TENDERS.get(kind, kind))}", amount)
    yield from wrap(gettext("tax per rate"), width)
    net_word, tax_word = gettext("net"), gettext("tax")
    for code, (rate, net, tax) in z.taxes.items():
        name = f"  {code} {i18n.format_percent(rate, lang)}"
        net_text, tax_text = figure(net), figure(tax)
        both = f"{name} {net_word} {net_text}  {tax_word} {tax_text}"
        if len(both) <= width:
            yield both
        else:
            yield from pair(f"{name} {net_word}", net_text, width)
            yield from pair(f"{name} {tax_word}", tax_text, width)
    yield "-" * width
    yield from row(gettext("opening float"), z.opening_float, gettext("float"))
    yield from row(gettext("cash expected in drawer"), z.cash_expected, gettext("cash expected"))


def receipt_lines(receipt: Receipt, width: int = 42) -> Iterator[str]:
    """A receipt as monospaced text: the terminal demo and the replay tool print this.
    The same layout as the paper, without code pages (a terminal prints Unicode)."""
    from kiosk.drivers.layout import receipt_ops, text_lines, text_paper  # noqa: PLC0415

    yield from text_lines(receipt_ops(receipt, text_paper(width)), width)
