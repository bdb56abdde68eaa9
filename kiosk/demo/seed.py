"""The demo shop: catalog, a supervisor and a cashier, and opening stock."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from kiosk.ledger.core import Ledger
from kiosk.ledger.models import Item, Staff

DEMO_STAFF = [
    ("S1", "Sam Supervisor", "supervisor", "1234"),
    ("C1", "Cat Cashier", "cashier", "5678"),
]
DEMO_STOCK = {
    "HL-YEL": 120, "WATER-15": 240, "BANANA": 40_000, "CHEESE": 30, "CHARGER": 25,
    "CABLE": 60, "SCREWSET": 15, "PRYTOOL": 40, "LAGER-6": 48, "BAG": 500, "COFFEE": 36,
}  # fmt: skip


def seed(ledger: Ledger, out: Callable[[str], None]) -> None:
    """Once per ledger: the demo catalog, staff (S1 PIN 1234, C1 PIN 5678), stock."""
    if Item.select().exists():
        return
    from kiosk.ledger import catalog_csv, staff, stock  # noqa: PLC0415 - a new ledger only

    with resources.as_file(resources.files("kiosk.demo") / "catalog.csv") as path:
        result = catalog_csv.import_file(ledger, path, staff=None)
    if not Staff.select().exists():
        for code, name, role, pin in DEMO_STAFF:
            staff.add(ledger, code, name, role, pin, by=None)
    stock.receive(
        ledger,
        [stock.ReceiveLine(sku, qty) for sku, qty in DEMO_STOCK.items()],
        staff="S1",
        reference="demo opening stock",
    )
    stock.build_kit(ledger, "REPAIR-KIT", 5, staff="S1", lot="DEMO-1")
    out(
        f"seeded demo ledger: {result.added} items, staff S1 (supervisor, PIN 1234) "
        "and C1 (cashier, PIN 5678), opening stock"
    )
