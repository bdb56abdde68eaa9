"""`kiosk catalog import|export`: the kiosk's own item master as CSV."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kiosk import i18n
from kiosk.cli.base import config_option, db_option, open_ledger, say


@click.group()
def catalog() -> None:
    """Import and export the item master as CSV."""


@catalog.command("import")
@config_option
@db_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check the file only; write nothing.")
@click.option("--staff", help="Staff code recorded in the audit trail.")
def catalog_import(db_path: Path | None, file: Path, dry_run: bool, staff: str | None) -> None:
    """Import items from FILE (checked whole first: all rows or none)."""
    from kiosk.ledger import catalog_csv  # noqa: PLC0415

    ledger = open_ledger(db_path)
    if dry_run:
        rows = catalog_csv.read_file(ledger, file)
        say(i18n._("{file}: {count} rows ok (nothing written)", file=file, count=len(rows)))
        return
    result = catalog_csv.import_file(ledger, file, staff)
    say(
        i18n._(
            "{file}: {added} added, {updated} updated, {unchanged} unchanged, {barcodes} barcodes",
            file=file,
            added=result.added,
            updated=result.updated,
            unchanged=result.unchanged,
            barcodes=result.barcodes,
        )
    )


@catalog.command("export")
@config_option
@db_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
                default="-")  # fmt: skip
def catalog_export(db_path: Path | None, file: Path) -> None:
    """Write the item master to FILE (default: standard output)."""
    from kiosk.ledger import catalog_csv  # noqa: PLC0415

    ledger = open_ledger(db_path)
    if str(file) == "-":
        catalog_csv.export(ledger, sys.stdout)
        return
    with open(file, "w", encoding="utf-8", newline="") as stream:
        count = catalog_csv.export(ledger, stream)
    say(i18n._("{file}: {count} items", file=file, count=count), err=True)
