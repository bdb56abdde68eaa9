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
from kiosk.testing.ledgers import CATALOG  # the shared test catalog (also the benches')

os.environ.pop("KIOSK_CONFIG", None)
# A loaded CI machine must not turn slow examples into failures: no per-example deadline.
settings.register_profile("kiosk", deadline=None, print_blob=True)
settings.load_profile("kiosk")


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
