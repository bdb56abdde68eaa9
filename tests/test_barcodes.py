from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.config import BarcodeConfig, VariableMeasureLayout
from kiosk.ledger.barcodes import (
    GS,
    BarcodeError,
    BarcodeParser,
    Gs1Element,
    Gtin,
    InternalSku,
    ReceiptRef,
    StaffBadge,
    VariableMeasure,
    check_digit,
    compress_upca,
    element_string,
    expand_upce,
    parse_gs1_date,
    variable_measure_code,
    with_check_digit,
)

parser = BarcodeParser()


@pytest.mark.parametrize(
    ("raw", "gtin", "symbology"),
    [
        ("4006381333931", "04006381333931", "EAN-13"),
        ("]E04006381333931", "04006381333931", "EAN-13"),
        ("96385074", "00000096385074", "EAN-8"),
        ("]E004252614", "00042100005264", "UPC-E"),
        ("]E496385074", "00000096385074", "EAN-8"),
        ("036000291452", "00036000291452", "UPC-A"),
        ("04252614", "00042100005264", "UPC-E"),  # 0425261 4 -> 042100005264
        ("425261", "00042100005264", "UPC-E"),  # scanner sends the 6 digits only
        ("14001234000012", "14001234000012", "GTIN-14"),
        ("04006381333931\r\n", "04006381333931", "EAN-13"),  # a padded GTIN-14 = EAN-13
    ],
)
def test_gtins(raw, gtin, symbology):
    parsed = parser.parse(raw)
    assert parsed == Gtin(gtin, symbology)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("4006381333932", "bad check digit"),
        ("96385075", "bad check digit"),
        ("036000291453", "bad check digit"),
        ("14001234000013", "bad check digit"),
        (with_check_digit("990000000000"), "unknown prefix"),
        (with_check_digit("981234567890"), "unknown prefix"),
        ("400638133393", "bad check digit"),  # 12 digits: a truncated EAN-13
        ("4006381", "UPC-E number system"),
        ("12345", "truncated or unknown code"),
        ("123456789012345", "truncated or unknown code"),
        ("", "empty scan"),
        ("   ", "empty scan"),
        ("hello world", "unknown barcode format"),
        ("40063\x0781333931", "control characters"),
        ("]C1", "symbology identifier with no data"),
        (with_check_digit("9400123400001"), "variable-measure GTIN-14"),
    ],
)
def test_bad_codes_have_specific_reasons(raw, reason):
    with pytest.raises(BarcodeError) as info:
        parser.parse(raw)
    assert reason in info.value.reason


def test_variable_measure_price_and_weight():
    price = parser.parse(with_check_digit("210045600437"))
    assert price == VariableMeasure("21", "00456", "price", Decimal("4.37"))
    assert price.key == "2100456" and price.price == Decimal("4.37")
    weight = parser.parse(with_check_digit("280012300532"))
    assert weight.weight_kg == Decimal("0.532") and weight.key == "2800123"


def test_variable_measure_layout_with_price_check_digit():
    layout = VariableMeasureLayout(prefix="22", kind="price", item_digits=5, value_check=True)
    custom = BarcodeParser(BarcodeConfig(variable_measure=[layout]))
    code = variable_measure_code(layout, "12345", Decimal("12.34"))
    assert custom.parse(code) == VariableMeasure("22", "12345", "price", Decimal("12.34"))
    # Written out by hand: GS1's price check digit example, 28.75 -> 9; EAN-13 check 0.
    assert variable_measure_code(layout, "12345", Decimal("28.75")) == "2212345928750"
    assert custom.parse("2212345928750").value == Decimal("28.75")
    tampered = code[:7] + str((int(code[7]) + 1) % 10) + code[8:12]
    with pytest.raises(BarcodeError, match="bad price check digit"):
        custom.parse(with_check_digit(tampered))


def test_unconfigured_restricted_prefix_is_an_ordinary_gtin():
    assert isinstance(parser.parse(with_check_digit("200000000001")), Gtin)


def test_gs1_128_with_fnc1_and_symbology_identifiers():
    body = f"0109501101530003{GS}17261231{GS}10ABC123{GS}21S/N-9{GS}3103001250"
    for prefix in ("]C1", "]d2", "]Q3", ""):
        parsed = parser.parse(prefix + body)
        assert isinstance(parsed, Gs1Element)
        assert parsed.gtin == "09501101530003"
        assert parsed.expiry == date(2026, 12, 31)
        assert parsed.batch == "ABC123"
        assert parsed.serial == "S/N-9"
        assert parsed.weight_kg == Decimal("1.250")


def test_gs1_leading_fnc1_price_count_and_dates():
    parsed = parser.parse(f"]C1{GS}0209501101530003{GS}375{GS}15260200{GS}39222499")
    assert parsed.gtin == "09501101530003"
    assert parsed.count == 5
    assert parsed.best_before == date(2026, 2, 28)  # day 00 = last day of the month
    assert parsed.price == Decimal("24.99")


def test_gs1_printed_form():
    parsed = parser.parse("(01)09501101530003(11)251130(30)12")
    assert parsed.ais == {"01": "09501101530003", "11": "251130", "30": "12"}


def test_gs1_digits_only_fixed_length():
    parsed = parser.parse("0109501101530003" + "17261231")
    assert parsed.gtin == "09501101530003" and parsed.expiry == date(2026, 12, 31)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("]C10109501101530004", "bad check digit in AI (01)"),
        ("]C1010950110153", "truncated AI (01)"),
        ("]C1010950110153000317261331", "bad date in AI (17)"),
        ("]C1010950110153000317260231", "bad date in AI (17)"),
        ("]C10109501101530003" + "99XYZ", "unsupported application identifier"),
        ("]C1" + "10" + "A" * 21, "longer than 20"),
        ("]C1" + "10ABC" + GS + "10DEF", "appears twice"),
        ("]C1" + "3103001", "truncated AI (3103)"),
        ("]C1" + "10ab\u00e9", "outside the GS1 set"),
        ("(01)0950110153000", "truncated AI (01)"),
        ("(01)09501101530003(17", "malformed"),
        ("]C1" + "30" + GS, "empty AI (30)"),
    ],
)
def test_bad_gs1_strings(raw, reason):
    with pytest.raises(BarcodeError) as info:
        parser.parse(raw)
    assert reason in info.value.reason


def test_internal_receipt_and_staff_codes():
    assert parser.parse("SKUPEN-01") == InternalSku("PEN-01")
    assert parser.parse("RCPtill-01-000042") == ReceiptRef("till-01-000042")
    assert parser.parse("STF1001") == StaffBadge("1001")
    for bad, reason in [
        ("RCPtill-01", "malformed receipt number"),
        ("STF", "malformed staff badge"),
        ("SKU", "malformed internal SKU"),
    ]:
        with pytest.raises(BarcodeError, match=reason):
            parser.parse(bad)


def test_gs1_date_century_window():
    assert parse_gs1_date("991231", today=date(2026, 1, 1)) == date(1999, 12, 31)
    assert parse_gs1_date("700101", today=date(2026, 1, 1)) == date(2070, 1, 1)
    assert parse_gs1_date("240200", today=date(2026, 1, 1)) == date(2024, 2, 29)


# ---------------------------------------------------------------- properties

digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


def mod10_oracle(body: str) -> str:
    """The GS1 check digit the way the standard's worked example does it: add the
    digits in the positions weighted 3 (counting from the right, the rightmost body
    digit is weighted 3), times 3, plus the others; the digit up to the next ten."""
    threes = sum(int(d) for d in body[::-1][0::2])
    ones = sum(int(d) for d in body[::-1][1::2])
    return str(-(threes * 3 + ones) % 10)


@given(st.text(alphabet="0123456789", min_size=1, max_size=17))
def test_check_digit_against_the_standard_method(body):
    code = with_check_digit(body)
    assert code == body + mod10_oracle(body)
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
    assert check_digit(wrong[:-1]) != wrong[-1]


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ("400638133393", "1"),  # EAN-13 4006381333931 (Stabilo, GS1's own example)
        ("03600029145", "2"),  # UPC-A 036000291452
        ("9638507", "4"),  # EAN-8 96385074
        ("0950110153000", "3"),  # GTIN-14 09501101530003 (GS1 example)
        ("37610425002123456", "9"),  # SSCC 376104250021234569 (GS1 example)
    ],
)
def test_check_digits_written_down(body, check):
    assert check_digit(body) == check


@given(st.text(alphabet="0123456789", min_size=12, max_size=12).filter(lambda s: s[:2] < "20"))
def test_ean13_parses_to_its_gtin(body):
    code = with_check_digit(body)
    parsed = parser.parse(code)
    assert parsed.gtin == code.zfill(14)


@given(st.sampled_from("01"), st.text(alphabet="0123456789", min_size=6, max_size=6))
def test_upce_expand_compress_round_trip(ns, six):
    upca_body = expand_upce(ns + six + "0")[:-1]
    upca = with_check_digit(upca_body)
    upce = ns + six + upca[-1]
    assert expand_upce(upce) == upca
    assert expand_upce(compress_upca(upca)) == upca  # compression is not unique
    assert parser.parse("]E0" + upce).gtin == upca.zfill(14)
    plain = parser.parse(upce)
    assert upca.zfill(14) in (plain.gtin, plain.alt)  # ambiguous with EAN-8 without ]E0
    if ns == "0":  # 6 digits: number system 0 and the check digit left out
        assert parser.parse(six).gtin == upca.zfill(14)


@given(
    st.text(alphabet="0123456789", min_size=13, max_size=13).map(lambda b: "0" + b[:12]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/", min_size=1, max_size=20),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2049, 12, 31)),
    st.integers(min_value=1, max_value=999999),
)
def test_element_string_round_trip(body13, batch, expiry, grams):
    gtin = with_check_digit(body13)
    ais = {"01": gtin, "10": batch, "17": expiry.strftime("%y%m%d"), "3103": f"{grams:06d}"}
    parsed = parser.parse("]C1" + element_string(ais))
    assert parsed.ais == ais
    assert parsed.expiry == expiry
    assert parsed.weight_kg == Decimal(grams) / 1000


@given(st.text(max_size=40))
def test_garbage_never_crashes(raw):
    try:
        result = parser.parse(raw)
    except BarcodeError as exc:
        assert exc.reason
    else:
        assert result is not None


@given(st.text(alphabet="0123456789\x1d()]CdQE1", max_size=40))
def test_gs1_shaped_garbage_never_crashes(raw):
    try:
        parser.parse(raw)
    except BarcodeError as exc:
        assert exc.reason
