"""`kiosk run --demo`, headless: a scripted shift on a demo ledger.

It seeds a demo catalog, staff and stock on first use, then scans real barcode
formats (EAN-13, a case GTIN-14, a weighed scale label, a price-embedded label, a
GS1-128 string with a batch), shows the priced cart, takes cash, prints the receipt,
takes a return, and ends with the Z report, stock and a ledger verification.
The full-screen app replaces this with the same ledger underneath.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path

import platformdirs

from kiosk.config import Config
from kiosk.ledger import catalog, catalog_csv, reports, sales, staff, stock
from kiosk.ledger.barcodes import GS, BarcodeError
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.models import Item, Staff, Txn
from kiosk.ledger.money import LineInput, Tender, price_cart
from kiosk.ledger.verify import verify
from kiosk.report_text import money, z_report_lines

DEMO_SUPERVISOR = ("S1", "Sam Supervisor", "supervisor", "1234")
DEMO_STOCK = {
    "HL-YEL": 120, "WATER-15": 240, "BANANA": 40_000, "CHEESE": 30, "CHARGER": 25,
    "CABLE": 60, "SCREWSET": 15, "PRYTOOL": 40, "LAGER-6": 48, "BAG": 500, "COFFEE": 36,
}  # fmt: skip
DEMO_SCANS = [
    "4006381333931",  # EAN-13: highlighter
    "4006381333931",  # scanned again: quantity 2
    "14001234000012",  # GTIN-14 case of 6 waters
    "2800123005320",  # scale label: 0.532 kg of bananas
    "2100456004374",  # price-embedded label: cheese for 4.37
    f"]C10100036000291452{GS}10LOT42",  # GS1-128 with FNC1: coffee, batch LOT42
    "4006381333932",  # a misread: bad check digit
    "4001234000046",  # bundle kit: charger + cable
]


def demo_ledger_path() -> Path:
    return Path(platformdirs.user_data_dir("kiosk")) / "demo-ledger.db"


def seed(ledger: Ledger, out: Callable[[str], None]) -> None:
    """Catalog, a supervisor and opening stock, once per demo ledger."""
    if Item.select().exists():
        return
    with resources.as_file(resources.files("kiosk.demo") / "catalog.csv") as path:
        result = catalog_csv.import_file(ledger, path, staff=None)
    code, name, role, pin = DEMO_SUPERVISOR
    if not Staff.select().exists():
        staff.add(ledger, code, name, role, pin, by=None)
    stock.receive(
        ledger,
        [stock.ReceiveLine(sku, qty) for sku, qty in DEMO_STOCK.items()],
        staff=code,
        reference="demo opening stock",
    )
    stock.build_kit(ledger, "REPAIR-KIT", 5, staff=code, lot="DEMO-1")
    out(f"seeded demo ledger: {result.added} items, supervisor {code} (PIN {pin}), stock")


def run_demo(config: Config, db_path: Path | None, out: Callable[[str], None]) -> None:
    path = db_path or demo_ledger_path()
    config = config.with_ledger_path(path)
    with Ledger.open(config) as ledger:
        out(f"kiosk demo: {config.device.id} at {config.device.store}, ledger {path}")
        seed(ledger, out)
        cart = _scan_all(ledger, out)
        sale = _pay(ledger, cart, out)
        refund = sales.post_return(
            ledger,
            [sales.ReturnLine("HL-YEL", Decimal(1))],
            reason="unwanted",
            staff=DEMO_SUPERVISOR[0],
            receipt=sale.number,
        )
        out(f"returned 1 highlighter on {sale.number}: refund {money(-refund.due, config)}")
        out("")
        for line in z_report_lines(reports.z_report(date.today()), config):
            out(line)
        out("")
        out("stock after the shift (pieces; grams for kg items):")
        for row in reports.stock():
            out(f"  {row.sku:<12} {row.on_hand:>7}  {row.name}")
        problems = verify(ledger)
        out("ledger verify: " + ("ok" if not problems else "; ".join(problems)))
        if problems:
            raise LedgerError("the demo ledger does not verify")


def _scan_all(ledger: Ledger, out: Callable[[str], None]) -> list[sales.SaleLine]:
    lines: list[sales.SaleLine] = []
    for raw in DEMO_SCANS:
        try:
            scanned = catalog.resolve_scan(ledger.parser.parse(raw))
        except (BarcodeError, LedgerError) as exc:
            out(f"scan {raw!r}: refused: {exc} -> ask staff or look the item up by name")
            continue
        for index, line in enumerate(lines):
            same = line.sku == scanned.item.sku and line.amount is None and scanned.amount is None
            if same and scanned.item.unit == "each":
                lines[index] = sales.SaleLine(
                    line.sku, line.qty + scanned.qty, barcode=line.barcode
                )
                break
        else:
            lines.append(
                sales.SaleLine(
                    scanned.item.sku,
                    scanned.qty,
                    amount=scanned.amount,
                    barcode=scanned.barcode,
                    lot=scanned.lot,
                )
            )
        priced = _price(ledger, lines)
        out(
            f"scan {raw.replace(GS, '<GS>')!r}: {scanned.item.name} x {scanned.qty}"
            f" -> cart {money(priced.total, ledger.config)}"
        )
    return lines


def _price(ledger: Ledger, lines: list[sales.SaleLine]):
    items = {i.sku: i for i in Item.select().where(Item.sku.in_([li.sku for li in lines]))}
    return price_cart(
        [
            LineInput(li.sku, li.qty, items[li.sku].price, items[li.sku].tax_code, li.discount,
                      li.amount)
            for li in lines
        ],
        ledger.policy,
    )  # fmt: skip


def _pay(ledger: Ledger, lines: list[sales.SaleLine], out: Callable[[str], None]):
    cfg = ledger.config
    cart = _price(ledger, lines)
    card = Decimal("20.00")
    cash = Decimal("50.00")
    sale = sales.post_sale(
        ledger,
        lines,
        [Tender("card", card, reference="DEMO-APPROVAL-001"), Tender("cash", cash)],
    )
    txn = Txn.get_by_id(sale.id)
    out("")
    out(f"{cfg.device.store:^40}")
    out(f"receipt {sale.number}   {txn.ts.astimezone():%Y-%m-%d %H:%M} (local)")
    for line in cart.lines:
        name = Item.get_by_id(line.sku).name
        out(f"  {name[:26]:<26} {line.qty:>6} {line.total:>8}")
    for tax in cart.taxes:
        out(f"  tax {tax.code} {tax.rate * 100:.0f}% on {tax.net:>8}: {tax.tax:>6}")
    out(f"  {'TOTAL':<33} {money(cart.total, cfg)}")
    if sale.rounding:
        out(f"  {'cash rounding':<33} {money(sale.rounding, cfg)}")
    out(f"  {'card (approval DEMO-APPROVAL-001)':<33} {money(card, cfg)}")
    out(f"  {'cash':<33} {money(cash, cfg)}")
    out(f"  {'change':<33} {money(sale.change, cfg)}")
    out(f"  barcode for returns: {cfg.barcodes.receipt_prefix}{sale.number}")
    out("")
    return sale
