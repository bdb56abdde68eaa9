"""`kiosk stock` and `kiosk report z`."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from kiosk import i18n
from kiosk.cli.base import UserError, config_option, db_option, money_option, open_ledger


@click.command()
@config_option
@db_option
@click.argument("sku", required=False)
def stock(db_path: Path | None, sku: str | None) -> None:
    """On-hand stock, for one SKU or all (pieces, or grams for kg items)."""
    from kiosk.ledger import reports  # noqa: PLC0415

    open_ledger(db_path)
    rows = reports.stock(sku)
    if sku and not rows:
        raise UserError(i18n._("unknown item {sku!r}", sku=sku))
    for row in rows:
        unit = "g" if row.unit == "kg" else ""
        extra = "".join(
            f"  {loc}: {qty}{unit}" for loc, qty in sorted(row.locations.items()) if loc != "main"
        )
        click.echo(f"{row.sku:<16} {row.on_hand:>8}{unit:<1}  {row.name}{extra}")


@click.group()
def report() -> None:
    """Reports."""


@report.command("z")
@config_option
@db_option
@click.option("--date", "day", help="Local calendar day, YYYY-MM-DD (default: today).")
@click.option("--float", "opening_float", default="0", help="Cash in the drawer at opening.")
def report_z(db_path: Path | None, day: str | None, opening_float: str) -> None:
    """End-of-day totals: tenders, tax per rate, returns, voids, discounts, cash expected."""
    from kiosk.checkout.report_text import z_report_lines  # noqa: PLC0415
    from kiosk.ledger import reports  # noqa: PLC0415

    try:
        the_day = date.fromisoformat(day) if day else date.today()
    except ValueError:
        raise UserError(i18n._("--date {day!r} is not YYYY-MM-DD", day=day)) from None
    ledger = open_ledger(db_path)
    z = reports.z_report(the_day, money_option(opening_float, "--float"))
    for line in z_report_lines(z, ledger.config):
        click.echo(line)
