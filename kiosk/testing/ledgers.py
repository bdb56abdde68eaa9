"""Ledgers made with the real posting code, and what tests and benches read back from
ledgers and the controller's store (plain SQLite, not the code under test)."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path

from kiosk.config import parse
from kiosk.ledger import catalog_csv, sales, stock
from kiosk.ledger.core import Ledger
from kiosk.ledger.money import Tender

# A small catalog with every kind of item: pieces, weighed, kits (bundle and assembled),
# an age-restricted one, a case barcode (*6).
CATALOG = """\
sku,name,price,tax,unit,cost,barcodes,kit,components,min_age
PEN,Pen,1.49,A,each,0.40,4006381333931,,,
WATER,Water 1.5 l,0.79,B,each,0.21,4001234000015;14001234000012*6,,,
BANANA,Bananas,1.99,B,kg,0.85,2800123000004,,,
CHEESE,Cheese,18.90,B,each,9.10,2100456000000,,,
CHARGER,Charger,19.99,A,each,8.50,4001234000022,,,
CABLE,Cable,9.99,A,each,2.10,4001234000039,,,
TRAVEL,Travel kit,24.99,A,each,,4001234000046,bundle,CHARGER*1;CABLE*1,
SCREW,Screwdriver set,12.50,A,each,4.00,4001234000053,,,
PRY,Pry tool,2.50,A,each,0.30,4001234000060,,,
REPAIR,Repair kit,17.90,A,each,,4001234000077,assembled,SCREW*1;PRY*2,
BEER,Lager 6-pack,6.49,A,each,3.20,4001234000084,,,18
COFFEE,Coffee 500 g,8.99,B,each,4.10,036000291452,,,
"""
SKUS = ["PEN", "WATER", "CHARGER", "CABLE", "COFFEE", "TRAVEL"]


def make_ledger(path: Path, device: str, n_sales: int, seed: int = 0) -> Path:
    config = parse(f'[device]\nid = "{device}"\nstore = "store-042"\n[ledger]\npath = "{path}"\n')
    rng = random.Random(seed)
    with Ledger.open(config) as ledger:
        catalog_csv.import_text(ledger, CATALOG)
        stock.receive(ledger, [stock.ReceiveLine(s, 1000) for s in SKUS], None)
        for _ in range(n_sales):
            lines = [sales.SaleLine(s, Decimal(rng.randint(1, 3))) for s in rng.sample(SKUS, 2)]
            sales.post_sale(ledger, lines, [Tender("cash", Decimal("500.00"))])
    return path


def ledger_totals(paths) -> dict[str, int]:
    total: Counter = Counter()
    for path in paths:
        with sqlite3.connect(path) as db:
            for sku, delta in db.execute(
                "SELECT sku, SUM(delta) FROM stock_move WHERE location = 'main' GROUP BY sku"
            ):
                total[sku] += delta
    return {sku: n for sku, n in total.items()}


def controller_levels(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT sku, on_hand FROM stock_level"))


def applied(path: Path) -> int:
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT COUNT(*) FROM applied_event").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def outbox_pending(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM outbox WHERE state != 'sent'").fetchone()[0]
