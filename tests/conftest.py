"""Shared fixtures: a real SQLite ledger file per test, seeded with a small catalog."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import settings

from kiosk.config import Config, parse
from kiosk.ledger import catalog_csv, staff
from kiosk.ledger.core import Ledger

os.environ.pop("KIOSK_CONFIG", None)
# A loaded CI machine must not turn slow examples into failures: no per-example deadline.
settings.register_profile("kiosk", deadline=None, print_blob=True)
settings.load_profile("kiosk")

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


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return parse(
        f"""
[device]
id = "till-01"
store = "store-042"
[ledger]
path = "{tmp_path / "ledger.db"}"
"""
    )


@pytest.fixture
def ledger(config: Config):
    with Ledger.open(config) as opened:
        yield opened


@pytest.fixture
def shop(ledger: Ledger) -> Ledger:
    """A ledger with the test catalog, a supervisor S1 (PIN 1234) and a cashier C1 (PIN 5678)."""
    catalog_csv.import_text(ledger, CATALOG)
    staff.add(ledger, "S1", "Sam", "supervisor", "1234", by=None)
    staff.add(ledger, "C1", "Cat", "cashier", "5678", by=None)
    return ledger


def D(text: str) -> Decimal:  # noqa: N802 - reads like a literal
    return Decimal(text)
