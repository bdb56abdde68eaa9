import io

import pytest

from kiosk.ledger import catalog_csv
from kiosk.ledger.catalog_csv import CatalogFileError
from kiosk.ledger.core import LedgerError
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


# ---------------------------------------------------------------- written out (mutation killers)

SMALL = (
    "sku,name,price,tax,unit,cost,active,barcodes,kit,components,min_age\n"
    "PEN,Pen,1.49,A,,0.40,yes,4006381333931;04006381333948*12,,,\n"
    "WATER,Water,0.79,B,each,,No,96385074,,,\n"
    "BANANA,Bananas,1.99,B,kg,,,2800123000004,,,\n"
    "SODA,Soda,1.00,B,each,,1,036000291452,,,18\n"
    "CASE,Case,5.00,A,each,,1,14001234000012,,,0\n"
    "DUO,Duo,2.50,A,each,,1,,bundle,PEN*2,\n"
    "HAM,Ham,12.90,B,kg,,1,2812345000007 SKUHAM-1,,,\n"  # scale item 12345; an internal code
)


def test_export_written_out(ledger):
    result = catalog_csv.import_text(ledger, SMALL, "S1")
    assert (result.added, result.updated, result.unchanged, result.barcodes) == (7, 0, 0, 8)
    out = io.StringIO()
    assert catalog_csv.export(ledger, out) == 7
    assert out.getvalue() == (
        "sku,name,price,tax,unit,cost,active,barcodes,kit,components,min_age\n"
        "BANANA,Bananas,1.99,B,kg,,1,2800123000004,,,0\n"
        "CASE,Case,5.00,A,each,,1,14001234000012,,,0\n"
        "DUO,Duo,2.50,A,each,,1,,bundle,PEN*2,0\n"
        "HAM,Ham,12.90,B,kg,,1,2812345000007;SKUHAM-1,,,0\n"
        "PEN,Pen,1.49,A,each,0.40,1,4006381333931;4006381333948*12,,,0\n"
        "SODA,Soda,1.00,B,each,,1,0036000291452,,,18\n"
        "WATER,Water,0.79,B,each,,0,96385074,,,0\n"
    )
    pen = Item.get_by_id("PEN")
    assert (pen.cost, pen.unit, pen.active, pen.min_age) == (D("0.40"), "each", True, 0)
    assert Item.get_by_id("WATER").active is False
    assert Barcode.get_by_id("04006381333931").pack_qty == 1
    assert Barcode.get_by_id("04006381333948").pack_qty == 12
    assert [
        (a.staff, a.detail) for a in Audit.select().where(Audit.action == "catalog_import")
    ] == [("S1", "7 added, 0 updated, 0 unchanged")]
    assert [(a.staff, a.subject) for a in Audit.select().where(Audit.action == "kit_bom")] == [
        ("S1", "DUO")
    ]


def test_every_changed_field_is_audited_with_old_and_new(ledger):
    catalog_csv.import_text(ledger, SMALL)
    changed = SMALL.replace("PEN,Pen,1.49,A,,0.40,yes,", "PEN,Ink pen,1.59,B,kg,,0,").replace(
        "SODA,Soda,1.00,B,each,,1,036000291452,,,18", "SODA,Soda,1.00,B,each,,1,036000291452,,,16"
    )
    result = catalog_csv.import_text(ledger, changed, "C1")
    assert (result.added, result.updated, result.unchanged) == (0, 2, 5)
    rows = Audit.select().where(Audit.action == "item_change").order_by(Audit.id)
    assert [(a.staff, a.subject, a.field, a.old, a.new) for a in rows] == [
        ("C1", "PEN", "name", "Pen", "Ink pen"),
        ("C1", "PEN", "price", "1.49", "1.59"),
        ("C1", "PEN", "tax_code", "A", "B"),
        ("C1", "PEN", "cost", "0.40", None),
        ("C1", "PEN", "unit", "each", "kg"),
        ("C1", "PEN", "active", "True", "False"),
        ("C1", "SODA", "min_age", "18", "16"),
    ]
    assert Audit.select().where(Audit.action == "catalog_import").order_by(Audit.id.desc()).get(
    ).detail == "0 added, 2 updated, 5 unchanged"  # fmt: skip


def one_problem(ledger, row: str, header: str = HEADER) -> list[str]:
    with pytest.raises(CatalogFileError) as info:
        catalog_csv.import_text(ledger, header + row)
    return info.value.problems


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("a b,X,1.00,A,each,,,,,", "line 2: sku 'a b' must be 1-32 letters, digits or . _ / -"),
        ("S,X,1.00,A,each,,,bundle,,", "line 2: a kit needs components"),
        ("S,X,1.00,A,each,,,boxed,PEN*1,",
         "line 2: kit 'boxed' must be empty, bundle or assembled"),
        ("S,X,1.00,A,each,,,,PEN*1,", "line 2: components given but kit is empty"),
        ("S,X,1.00,A,each,,4006381333931 4006381333931,,,",
         "line 2: barcode '4006381333931' is listed twice"),
        ("S,X,1.00,A,each,,4006381333931*x,,,",
         "line 2: barcode 4006381333931: quantity after * 'x' is not a whole number"),
        ("S,X,1.00,A,each,,4006381333931*0,,,",
         "line 2: barcode 4006381333931: quantity after * '0' must be from 1 to 10000"),
        ("S,X,1.00,A,each,,,bundle,PEN*10001,",
         "line 2: component PEN: quantity after * '10001' must be from 1 to 10000"),
        ("S,X,1.00,A,each,,,,,100", "line 2: min_age (years) '100' must be from 0 to 99"),
        ("S,X,1.00,A,each,0.12345,,,,", "line 2: cost '0.12345' must have at most 4 decimal(s)"),
        ("S,X,1.00,A,each,,2800123000110,,,",
         "line 2: barcode '2800123000110': a scale code in the catalog must carry a zero value"),
        ("S,X,1.00,A,each,,RCPtill-01-000001,,,",
         "line 2: barcode 'RCPtill-01-000001': not an item barcode"),
    ],
)  # fmt: skip
def test_row_refusals_word_for_word(ledger, row, problem):
    assert one_problem(ledger, row + "\n") == [problem]


def test_active_is_refused_word_for_word(ledger):
    header = "sku,name,price,tax,active\n"
    assert one_problem(ledger, "S,X,1.00,A,maybe\n", header) == [
        "line 2: active 'maybe' must be 1 or 0"
    ]
    catalog_csv.import_text(ledger, header + "S,X,1.00,A,YES\nT,Y,1.00,A,FALSE\n")
    assert (Item.get_by_id("S").active, Item.get_by_id("T").active) == (True, False)


def test_kits_of_kits_are_refused(shop):
    # TRAVEL is a bundle in the ledger; KIT2 is one in the file.
    text = HEADER + (
        "K1,Kit one,5.00,A,each,,,bundle,TRAVEL*1,\n"
        "K2,Kit two,5.00,A,each,,,bundle,KIT2*1,\n"
        "KIT2,Kit,5.00,A,each,,,assembled,PEN*2;CABLE*1,\n"
        "K3,Kit three,5.00,A,each,,,bundle,K3*1,\n"
    )
    with pytest.raises(CatalogFileError) as info:
        catalog_csv.import_text(shop, text)
    assert info.value.problems == [
        "line 2: component TRAVEL is itself a kit",
        "line 3: component KIT2 is itself a kit",
        "line 5: component K3 is itself a kit",
    ]
    # Plain items of the ledger and of the file are fine components; so is a ledger
    # kit that the file turns into a plain item.
    ok = HEADER + (
        "K1,Kit one,5.00,A,each,,,bundle,PEN*2;NEW*1,\n"
        "NEW,New,1.00,A,each,,,,,\n"
        "TRAVEL,Travel kit,24.99,A,each,,,,,\n"
        "K2,Kit two,5.00,A,each,,,bundle,TRAVEL*1,\n"
    )
    assert catalog_csv.import_text(shop, ok).added == 3


def test_leading_separators_in_a_list_are_skipped(ledger):
    catalog_csv.import_text(ledger, HEADER + "S,X,1.00,A,each,,;4006381333931,,,\n")
    assert Barcode.get_by_id("04006381333931").sku == "S"


def test_file_level_refusals_word_for_word(ledger):
    with pytest.raises(CatalogFileError) as info:
        catalog_csv.import_text(ledger, "sku,name,price,price,tax,name\n")
    assert str(info.value) == "<text>: line 1: column(s) named twice: name, price"
    with pytest.raises(CatalogFileError) as info:
        catalog_csv.import_text(ledger, "sku,name,price,tax,colour,size\n")
    assert str(info.value) == "<text>: line 1: unknown column(s) colour, size"
    with pytest.raises(CatalogFileError) as info:
        catalog_csv.import_text(ledger, "sku,tax,colour\n")
    assert str(info.value) == (
        "<text>: line 1: missing column(s) name, price\n<text>: line 1: unknown column(s) colour"
    )
    with pytest.raises(CatalogFileError) as info:
        catalog_csv.import_text(ledger, "")
    assert str(info.value) == "<text>: line 1: the file is empty (needs a header row)"
    two = HEADER + "A,B,1.00,A,each,,,,,,x\nC,D,1.00,A,each,,,,,,y\n"
    assert one_problem(ledger, two[len(HEADER) :]) == [
        "line 2: more fields than columns",
        "line 3: more fields than columns",
    ]
    huge = HEADER + "A," + "x" * 140_000 + ",1.00,A,each,,,,,\n"
    (problem,) = one_problem(ledger, huge[len(HEADER) :])
    # (csv counts the line only once it is read in full: the report says line 1)
    assert problem.endswith(": unreadable CSV: field larger than field limit (131072)")


def test_a_long_list_of_problems_is_cut_at_200(ledger):
    rows = "".join(f"S{i},X,1.00,Q,each,,,,,\n" for i in range(203))
    with pytest.raises(CatalogFileError) as info:
        catalog_csv.import_text(ledger, HEADER + rows)
    lines = str(info.value).split("\n")
    assert len(info.value.problems) == 203 and len(lines) == 201
    assert lines[0] == "<text>: line 2: unknown tax category 'Q' (have A, B, Z)"
    assert lines[-1] == "<text>: ... and 3 more problems"


def test_file_refusals_name_the_file(ledger, tmp_path):
    missing = tmp_path / "none.csv"
    with pytest.raises(LedgerError) as info:
        catalog_csv.import_file(ledger, missing)
    assert str(info.value) == f"{missing}: no such file"
    with pytest.raises(LedgerError) as info:
        catalog_csv.import_file(ledger, tmp_path)
    assert str(info.value) == f"{tmp_path}: cannot read: Is a directory"
    latin = tmp_path / "latin.csv"
    latin.write_bytes(HEADER.encode() + "CAF\xc9,Caf\xe9,1.00,A,each,,,,,\n".encode("latin-1"))
    with pytest.raises(CatalogFileError) as info:
        catalog_csv.import_file(ledger, latin)
    assert info.value.problems[0].startswith("line 2")
    assert str(info.value).startswith(f"{latin}: line 2")
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "S,X,1.00,Q,each,,,,,\n")
    with pytest.raises(CatalogFileError) as info:
        catalog_csv.import_file(ledger, bad)
    assert str(info.value) == f"{bad}: line 2: unknown tax category 'Q' (have A, B, Z)"


def test_a_line_break_inside_quotes_is_read_as_csv_and_refused_in_a_name(ledger, tmp_path):
    """A quoted line break is one field (the next row is line 4), but a name with a
    control character would break receipts and screens: refused, naming the line."""
    path = tmp_path / "items.csv"
    path.write_bytes(
        HEADER.encode()
        + b'S,"Two\r\nlines",1.00,A,each,,,,,\r\n'
        + b'T,"Tab\there",1.00,A,each,,,,,\r\n'
        + b'U,"\xe2\x80\xaeevil",1.00,A,each,,,,,\r\n'
        + b"V,Fine,1.00,A,each,,,,,\r\n"
    )
    with pytest.raises(CatalogFileError) as info:
        catalog_csv.import_file(ledger, path, "S1")
    assert info.value.problems == [
        "line 3: name contains the control character U+000D",
        "line 4: name contains the control character U+0009",
        "line 5: name contains the control character U+202E",
    ]
    path.write_bytes(HEADER.encode() + b"V,Fine,1.00,A,each,,,,,\r\n")
    catalog_csv.import_file(ledger, path, "S1")
    assert Item.get_by_id("V").name == "Fine"
    assert Audit.get(Audit.action == "catalog_import").staff == "S1"
