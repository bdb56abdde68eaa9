"""Catalog import/export written out (mutation killers for kiosk/ledger/catalog_csv.py):
the controller's item master columns, rows checked against a given item set instead
of the ledger's, the items a shop controller owns on a kiosk (applied as a real full
transfer through the kiosk's KioskCatalog), and the refusal texts word for word."""

from __future__ import annotations

import io
import sqlite3

import pytest

from kiosk.ledger import catalog, catalog_csv
from kiosk.ledger.catalog_csv import CatalogFileError, Known
from kiosk.ledger.core import LedgerError
from kiosk.ledger.models import Audit, Item
from kiosk.mqtt import master
from kiosk.mqtt.catalog_sync import KioskCatalog, Received
from tests.test_catalog_csv import HEADER, one_problem

MASTER = "sku,name,price,tax,case_pack,lead_time_days,reorder_point,safety_stock\n"


def rows(ledger, text: str, known: Known | None = None) -> list[catalog_csv.Row]:
    return catalog_csv.read_rows(ledger, io.StringIO(text), "<text>", known)


# ------------------------------------------------------------ the item master's columns


def test_master_columns_are_read_as_whole_numbers(ledger):
    got = rows(
        ledger,
        MASTER
        + "A,X,1.00,A,12,14,300,40\n"
        + "B,Y,1.00,A,,,,\n"
        + "C,Z,1.00,A,1,365,1000000,1000000\n"
        + "D,W,1.00,A,10000,0,0,0\n",
    )
    assert [(r.sku, r.case_pack, r.lead_time_days, r.reorder_point, r.safety_stock)
            for r in got] == [
        ("A", 12, 14, 300, 40),
        ("B", None, None, None, None),
        ("C", 1, 365, 1_000_000, 1_000_000),
        ("D", 10_000, 0, 0, 0),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ("0,,,", "case_pack '0' must be from 1 to 10000"),
        ("10001,,,", "case_pack '10001' must be from 1 to 10000"),
        ("x,,,", "case_pack 'x' is not a whole number"),
        (",366,,", "lead_time_days '366' must be from 0 to 365"),
        (",-1,,", "lead_time_days '-1' must be from 0 to 365"),
        (",,1000001,", "reorder_point '1000001' must be from 0 to 1000000"),
        (",,1.5,", "reorder_point '1.5' is not a whole number"),
        (",,,1000001", "safety_stock '1000001' must be from 0 to 1000000"),
        (",,,y", "safety_stock 'y' is not a whole number"),
    ],
)
def test_master_columns_refused_word_for_word(ledger, fields, problem):
    assert one_problem(ledger, f"A,X,1.00,A,{fields}\n", MASTER) == [f"line 2: {problem}"]


def test_a_kiosk_import_checks_and_ignores_the_master_columns(ledger):
    result = catalog_csv.import_text(ledger, MASTER + "A,X,1.00,A,6,2,10,5\n")
    assert (result.added, result.barcodes) == (1, 0)
    item = Item.get_by_id("A")
    assert (item.name, str(item.price), item.tax_code) == ("X", "1.00", "A")


# ------------------------------------------------------------ row refusals word for word


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("S,X,1.00,A,each,,4006381333931*,,,",
         "line 2: barcode '4006381333931*': a quantity must follow *"),
        ("S,X,1.00,A,each,,,bundle,PEN*1;PEN*2,", "line 2: component PEN is listed twice"),
        ("S,X,1.00,A,each,,,bundle,PEN*,", "line 2: component 'PEN*': a quantity must follow *"),
        ("S," + "n" * 121 + ",1.00,A,each,,,,,", "line 2: name is longer than 120 characters"),
    ],
)  # fmt: skip
def test_more_row_refusals_word_for_word(ledger, row, problem):
    assert one_problem(ledger, row + "\n") == [problem]


def test_a_name_of_exactly_120_characters_is_taken(ledger):
    catalog_csv.import_text(ledger, HEADER + "S," + "n" * 120 + ",1.00,A,each,,,,,\n")
    assert Item.get_by_id("S").name == "n" * 120


# ------------------------------------------------------------ rows checked against given items


def test_rows_for_the_controller_are_checked_against_the_items_given(shop):
    """The controller's item master checks a file against its own items (Known), not
    against the kiosk ledger that only lends the tax policy and barcode rules."""
    known = Known(skus={"M1", "MKIT"}, owners={"04006381333948": "M1"}, kits={"MKIT"})
    text = HEADER + (
        "NEW,New,1.00,A,each,,4006381333948,,,\n"  # owned by M1 in the master
        "K1,Kit,5.00,A,each,,,bundle,M1*2,\n"  # M1 is a master item, not a ledger one
        "K2,Kit 2,5.00,A,each,,,bundle,MKIT*1,\n"  # a kit in the master
        "K3,Kit 3,5.00,A,each,,,bundle,PEN*1,\n"  # the ledger's PEN is unknown to it
        "K4,Kit 4,5.00,A,each,,,bundle,TRAVEL*1,\n"  # the ledger's kit is unknown too
        "PEN2,Pen,1.00,A,each,,4006381333931,,,\n"  # PEN's barcode in the ledger: free here
    )
    with pytest.raises(CatalogFileError) as info:
        rows(shop, text, known)
    assert info.value.problems == [
        "line 2: barcode 04006381333948 already belongs to M1",
        "line 4: component MKIT is itself a kit",
        "line 5: component PEN is not a known item",
        "line 6: component TRAVEL is not a known item",
    ]
    good = HEADER + "K1,Kit,5.00,A,each,,,bundle,M1*2,\nPEN2,Pen,1.00,A,each,,4006381333931,,,\n"
    assert [(r.sku, r.components, r.barcodes) for r in rows(shop, good, known)] == [
        ("K1", {"M1": 2}, {}),
        ("PEN2", {}, {"04006381333931": 1}),
    ]
    # without a Known the same file is checked against the ledger
    with pytest.raises(CatalogFileError) as info:
        rows(shop, good)
    assert info.value.problems == [
        "line 3: barcode 04006381333931 already belongs to PEN",
        "line 2: component M1 is not a known item",
    ]


# ------------------------------------------------------------ items the controller owns


def own(ledger, skus: list[str], version: int = 1) -> None:
    """Apply a full item master version holding `skus` to the kiosk's ledger, as the
    kiosk's catalog sync does with a transfer from the shop controller."""
    records = [[s, f"Item {s}", "1.00", "A", "each", "", 1, "", 0, "", "", 0] for s in skus]
    digests = [master.digest(r) for r in records]
    got = Received(
        kind="full", base=0, version=version, checksum=master.combine(master.EMPTY, digests),
        items=len(records), records=records, size=0,
    )  # fmt: skip
    kiosk = KioskCatalog(ledger.config.ledger.path, ledger.policy)
    try:
        assert kiosk.apply(got) is True
    finally:
        kiosk.close()


def test_controller_owned_looks_every_sku_up_in_chunks_of_500(ledger):
    owned = [f"M{i:04d}" for i in range(1001)]
    own(ledger, owned)
    catalog_csv.import_text(ledger, "sku,name,price,tax\nL1,Local,1.00,A\nL2,Local,1.00,A\n")
    # 1,003 SKUs asked: chunks [0, 500), [500, 1000), [1000, 1003); owned ones at each
    # chunk's first and last place and local ones in between
    asked = list(reversed(owned))
    asked.insert(1, "L1")
    asked.insert(700, "L2")
    asked.append("NOT-THERE")
    assert len(asked) == 1004
    assert catalog_csv.controller_owned(ledger, asked) == owned
    assert catalog_csv.controller_owned(ledger, ["L1", "L2", "NOT-THERE"]) == []
    assert catalog_csv.controller_owned(ledger, asked[500:501]) == [asked[500]]
    assert catalog_csv.controller_owned(ledger, asked[:1] + asked[-1:]) == ["M1000"]
    assert catalog_csv.controller_owned(ledger, []) == []


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (1, "M0: owned by the shop controller's item master (change it there: "
            "kiosk controller catalog set)"),
        (2, "M0, M1: owned by the shop controller's item master (change them there: "
            "kiosk controller catalog set)"),
        (5, "M0, M1, M2, M3, M4: owned by the shop controller's item master (change them "
            "there: kiosk controller catalog set)"),
        (6, "M0, M1, M2, M3, M4 and 1 more: owned by the shop controller's item master "
            "(change them there: kiosk controller catalog set)"),
        (8, "M0, M1, M2, M3, M4 and 3 more: owned by the shop controller's item master "
            "(change them there: kiosk controller catalog set)"),
    ],
)  # fmt: skip
def test_an_import_touching_owned_items_is_refused_word_for_word(ledger, count, message):
    own(ledger, [f"M{i}" for i in range(9)])
    listed = [f"M{i}" for i in reversed(range(count))] + ["L1"]
    text = "sku,name,price,tax\n" + "".join(f"{s},Changed,2.00,B\n" for s in listed)
    with pytest.raises(LedgerError) as info:
        catalog_csv.import_text(ledger, text)
    assert str(info.value) == message
    # nothing of the file was written, not even the kiosk's own item
    assert not Item.select().where(Item.sku == "L1").exists()
    assert sorted((i.sku, i.name, str(i.price)) for i in Item.select()) == [
        (f"M{i}", f"Item M{i}", "1.00") for i in range(9)
    ]
    assert not Audit.select().where(Audit.action == "catalog_import").exists()


def test_a_single_owned_item_cannot_be_changed_locally(ledger):
    own(ledger, ["M0"])
    with pytest.raises(LedgerError) as info:
        catalog.update_item(ledger, "M0", "S1", name="Other")
    assert str(info.value) == (
        "M0: owned by the shop controller's item master (change it there: "
        "kiosk controller catalog set)"
    )
    assert Item.get_by_id("M0").name == "Item M0"


# ------------------------------------------------------------ export


def test_export_of_a_kit_whose_bom_is_missing_writes_no_components(ledger):
    """A ledger whose kit has no bill of materials (an item marked a kit by hand) is
    still exported: the kit with an empty components field, not an error."""
    catalog_csv.import_text(ledger, HEADER + "K,Kit,5.00,A,each,,,,,\n")
    with sqlite3.connect(ledger.config.ledger.path) as db:
        db.execute("UPDATE item SET kit = 'bundle' WHERE sku = 'K'")
    out = io.StringIO()
    assert catalog_csv.export(ledger, out) == 1
    assert out.getvalue() == (
        "sku,name,price,tax,unit,cost,active,barcodes,kit,components,min_age\n"
        "K,Kit,5.00,A,each,,1,,bundle,,0\n"
    )
