import io

import pytest

from kiosk.ledger import catalog_csv
from kiosk.ledger.catalog_csv import CatalogFileError
from kiosk.ledger.models import Audit, Barcode, Item, KitBom
from tests.conftest import CATALOG, D

HEADER = "sku,name,price,tax,unit,cost,barcodes,kit,components,min_age\n"


def test_import_and_export_round_trip(shop):
    out = io.StringIO()
    assert catalog_csv.export(shop, out) == 12
    text = out.getvalue()
    assert "4006381333931" in text and "14001234000012*6" in text and "2800123000004" in text
    assert "CHARGER*1;CABLE*1" in text or "CABLE*1;CHARGER*1" in text
    again = catalog_csv.import_text(shop, text)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 12)
    assert KitBom.select().count() == 2  # unchanged BOMs make no new versions


def test_update_changes_are_audited(shop):
    result = catalog_csv.import_text(shop, HEADER + "PEN,Pen,1.59,A,each,0.40,4006381333931,,,\n")
    assert (result.added, result.updated) == (0, 1)
    change = Audit.get((Audit.action == "item_change") & (Audit.subject == "PEN"))
    assert (change.field, change.old, change.new) == ("price", "1.49", "1.59")
    assert Item.get_by_id("PEN").price == D("1.59")


def test_every_bad_row_is_reported_and_nothing_is_imported(ledger):
    text = HEADER + (
        "A1,Good,1.00,A,each,,4006381333931,,,\n"
        "A2,Bad price,1.999,A,each,,,,,\n"
        "A3,Bad tax,1.00,Q,each,,,,,\n"
        "A1,Duplicate,1.00,A,each,,,,,\n"
        "A4,Bad check,1.00,A,each,,4006381333932,,,\n"
        "A5,Dup code,1.00,A,each,,4006381333931,,,\n"
        "A6,Bad unit,1.00,A,litre,,,,,\n"
        ",No sku,1.00,A,each,,,,,\n"
        "A7,Kit without parts,1.00,A,each,,,bundle,,\n"
        "A8,Unknown part,1.00,A,each,,,bundle,NOPE*1,\n"
        "A9,Neg price,-1,A,each,,,,,\n"
        "B1,Good too,2.00,B,kg,,,,,\n"
    )
    with pytest.raises(CatalogFileError) as info:
        catalog_csv.import_text(ledger, text)
    problems = info.value.problems
    assert problems == [
        "line 3: price '1.999' must have at most 2 decimal(s)",
        "line 4: unknown tax category 'Q' (have A, B, Z)",
        "line 5: duplicate SKU A1 (first on line 2)",
        "line 6: barcode '4006381333932': bad check digit",
        "line 7: duplicate barcode 04006381333931 (also A1, line 2)",
        "line 8: unit 'litre' must be each or kg",
        "line 9: sku is empty",
        "line 10: a kit needs components",
        "line 12: price '-1' must be from 0 to 10000000",
    ]
    assert Item.select().count() == 0


def test_ledger_level_conflicts(shop):
    text = HEADER + "NEW,New,1.00,A,each,,4006381333931,,,\nK,Kit,1.00,A,each,,,bundle,NOPE*2,\n"
    with pytest.raises(CatalogFileError) as info:
        catalog_csv.import_text(shop, text)
    assert info.value.problems == [
        "line 2: barcode 04006381333931 already belongs to PEN",
        "line 3: component NOPE is not a known item",
    ]
    assert not Item.select().where(Item.sku == "NEW").exists()


def test_moving_a_barcode_within_the_file_is_allowed(shop):
    text = HEADER + "PEN,Pen,1.49,A,each,,,,,\nPEN2,Pen 2,1.49,A,each,,4006381333931,,,\n"
    catalog_csv.import_text(shop, text)
    assert Barcode.get_by_id("04006381333931").sku == "PEN2"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "line 1: the file is empty (needs a header row)"),
        ("sku,name\nA,B\n", "line 1: missing column(s) price, tax"),
        ("sku,name,price,tax,colour\n", "line 1: unknown column(s) colour"),
        (HEADER + "A,B,1.00,A,each,,,,,,extra\n", "line 2: more fields than columns"),
    ],
)
def test_malformed_files(ledger, text, problem):
    with pytest.raises(CatalogFileError) as info:
        catalog_csv.import_text(ledger, text)
    assert info.value.problems[0] == problem


def test_header_only_and_bom_file(ledger, tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("\ufeff" + CATALOG, encoding="utf-8")
    result = catalog_csv.import_file(ledger, path)
    assert result.added == 12 and result.barcodes == 13
