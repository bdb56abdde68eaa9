"""The ledger's item master step (schema 5) on a ledger made by the previous schema."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

from kiosk.ledger import catalog_csv, core, journal, migrations, sales
from kiosk.ledger.core import Ledger
from kiosk.ledger.money import Tender
from tests.conftest import CATALOG

STEP = 5  # the item master's step


def test_a_ledger_of_the_previous_schema_gets_the_item_master_step(config, monkeypatch):
    assert migrations.STEPS[STEP] is migrations._v5_item_master
    with monkeypatch.context() as patch:  # the ledger as the previous schema made it
        patch.setattr(migrations, "STEPS", {k: v for k, v in migrations.STEPS.items() if k < STEP})
        patch.setattr(core, "SCHEMA_VERSION", STEP - 1)
        patch.setattr(journal, "append", lambda *args, **kwargs: None)  # schema 6's, later
        with Ledger.open(config) as ledger:
            catalog_csv.import_text(ledger, CATALOG)
            old = sales.post_sale(ledger, [sales.SaleLine("PEN")], [Tender("cash", Decimal(5))])
    path = config.ledger.path
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == STEP - 1
    with Ledger.open(config) as ledger:
        new = sales.post_sale(ledger, [sales.SaleLine("PEN")], [Tender("cash", Decimal(5))])
        # standalone: the local import still works, and the sale says "no controller version"
        assert catalog_csv.import_text(ledger, "sku,name,price,tax\nPEN,Pen,1.59,A\n").updated == 1
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == migrations.LATEST
        recorded = db.execute("SELECT txn_id, catalog_version FROM txn_catalog").fetchall()
        ids = dict(db.execute("SELECT number, id FROM txn").fetchall())
        db.execute("INSERT INTO catalog_state (id, version, checksum, items) VALUES (1, 9, 'x', 0)")
        db.commit()
    assert recorded == [(ids[new.number], None)]  # the old sale is left as it was
    with Ledger.open(config) as ledger:
        third = sales.post_sale(ledger, [sales.SaleLine("PEN")], [Tender("cash", Decimal(5))])
    with sqlite3.connect(path) as db:
        assert db.execute(
            "SELECT catalog_version FROM txn_catalog WHERE txn_id = ?", (ids[new.number] + 1,)
        ).fetchone() == (9,)
    assert third.number
    assert old.number not in [n for n, _ in recorded]
