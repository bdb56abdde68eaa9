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
    parse_element_string,
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
        ("]C10109501101530003" + "50XYZ", "unsupported application identifier"),
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
        assert exc.reason and exc.raw == raw and "\n" not in exc.reason
    else:
        # Whatever is accepted is one of the readings, and only what a scanner sends.
        assert isinstance(result, READINGS)
        assert raw.strip(" \r\n\t") and not any(ord(c) < 32 and c != GS for c in raw.strip())


READINGS = (Gtin, VariableMeasure, Gs1Element, InternalSku, ReceiptRef, StaffBadge)


@given(st.text(alphabet="0123456789\x1d()]CdQE1", max_size=40))
def test_gs1_shaped_garbage_never_crashes(raw):
    try:
        result = parser.parse(raw)
    except BarcodeError as exc:
        assert exc.reason and exc.raw == raw
    else:
        assert isinstance(result, READINGS)


# ---------------------------------------------------------------- exact refusals (mutation killers)


GTIN_AI = "0109501101530003"


def gtin(body: str) -> str:
    return body + mod10_oracle(body)


EXACT_REFUSALS = [
    ("", "empty scan"),
    (" \r\n", "empty scan"),
    ("]C1", "symbology identifier with no data"),
    ("4006\x7f381333931", "control characters in scan (check the scanner's setup)"),
    ("\x0b4006381333931", "control characters in scan (check the scanner's setup)"),
    ("4006381333932", "bad check digit"),
    ("036000291453", "bad check digit"),
    ("14001234000013", "bad check digit"),
    ("04252615", "bad check digit"),  # neither EAN-8 nor UPC-E
    ("]E404252614", "bad check digit"),  # ]E4 is EAN-8 only: no UPC-E reading
    ("]E404252615", "bad check digit"),
    ("96385075", "bad check digit"),  # starts with 9: no UPC-E reading
    ("4006381", "UPC-E number system must be 0 or 1"),
    ("12345", "truncated or unknown code (5 digits)"),
    ("012345678901234", "truncated or unknown code (15 digits)"),
    (gtin("990000000000"), "unknown prefix (a coupon code)"),
    *[
        (gtin(p + "123456789"), "unknown prefix (a coupon code)")
        for p in ("981", "982", "983", "984", "985")
    ],
    ("0" + gtin("990000000000"), "unknown prefix (a coupon code)"),  # GTIN-14 with a 0 in front
    (gtin("9400123400001"), "variable-measure GTIN-14 needs a GS1-128 weight or price"),
    ("hello world", "unknown barcode format"),
    ("X4006381333931", "unknown barcode format"),
    ("RCPtill-01-42", "malformed receipt number"),
    ("STFab!", "malformed staff badge"),
    ("STF" + "A" * 17, "malformed staff badge"),
    ("SKU", "malformed internal SKU code"),
    ("]C1" + GS, "empty GS1 element string"),
    ("]C1AB123", "expected an application identifier at 'AB12'"),
    ("]C10", "expected an application identifier at '0'"),
    ("]C150", "unsupported application identifier (50..)"),
    ("]C15012345", "unsupported application identifier (50..)"),
    ("(50)ABC", "unsupported application identifier (50)"),
    ("(01)09501101530003(17", "malformed (AI)value text"),
    ("(01)0950110153000", "truncated AI (01): needs 14 digits, got 13"),
    ("]C1" + "10" + GS + "17261231", "empty AI (10)"),
    ("]C1" + "10" + "A" * 21, "AI (10) is longer than 20 characters"),
    ("(30)12a", "AI (30) must be digits"),
    ("(10)AB\u00e9", "AI (10) has characters outside the GS1 set"),
    ("(01)09501101530004", "bad check digit in AI (01)"),
    ("(17)261301", "bad date in AI (17): date '261301' has month 13"),
    ("(17)260230", "bad date in AI (17): date '260230' has day 30"),
    ("(17)261200(17)261231", "AI (17) appears twice"),
    ("]C1" + "1726120017261231", "AI (17) appears twice"),
    ("(01)09501101530003(02)09501101530003", "AI (01) and (02) together"),
    ("]C1" + "3103000123" + "3102000456", "more than one weight or price AI"),
    ("]C1" + "3922123" + GS + "3921456", "more than one weight or price AI"),
    ("0109501101530004" + "17261231", "bad check digit in AI (01)"),  # digits only, 24
    ("0109501101530004" + "17261231\r\n", "bad check digit in AI (01)"),
    ("]C1 0109501101530003", "expected an application identifier at ' 010'"),
]


@pytest.mark.parametrize(("raw", "reason"), EXACT_REFUSALS)
def test_refusals_word_for_word_with_the_raw_scan(raw, reason):
    with pytest.raises(BarcodeError) as info:
        parser.parse(raw)
    assert info.value.reason == reason
    assert info.value.raw == raw  # the whole scan, symbology identifier and all
    assert str(info.value) == f"{reason}: {raw.replace(GS, '<GS>')[:60]!r}"


def test_a_refusal_shows_at_most_60_characters_with_fnc1_visible():
    raw = "]C1" + "10" + "A" * 20 + GS + "21" + "B" * 21 + GS + "30" + "1" * 30
    with pytest.raises(BarcodeError) as info:
        parser.parse(raw)
    shown = str(info.value).split(": ", 1)[1]
    assert shown == repr(raw.replace(GS, "<GS>")[:60]) and "<GS>" in shown


def test_not_text_is_refused_with_its_repr():
    with pytest.raises(BarcodeError) as info:
        parser.parse(4006381333931)
    assert (info.value.raw, info.value.reason) == ("4006381333931", "not text")


def test_parse_element_string_alone_names_its_text():
    with pytest.raises(BarcodeError) as info:
        parse_element_string("(01)123")
    assert info.value.raw == "(01)123"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("04252610", Gtin("00000004252610", "EAN-8", None)),  # its UPC-E reading is invalid
        ("]E004252614", Gtin("00042100005264", "UPC-E")),
        ("0425261", Gtin("00042100005264", "UPC-E")),  # 7 digits: check digit left out
        ("SKUPENX", InternalSku("PENX")),
        ("RCPTILL-01-000001", ReceiptRef("TILL-01-000001")),
        ("STFAB12", StaffBadge("AB12")),
        ("STFab12", StaffBadge("ab12")),
        ("0109501101530003", Gs1Element({"01": "09501101530003"})),  # 16 digits
        ("0209501101530003", Gs1Element({"02": "09501101530003"})),
        ("010950110153000317261231\r\n", Gs1Element({"01": "09501101530003", "17": "261231"})),
        ("]C1" + GS + "0109501101530003", Gs1Element({"01": "09501101530003"})),
        ("(3103)001250(3922)2499", Gs1Element({"3103": "001250", "3922": "2499"})),
        ("2100456123457", VariableMeasure("21", "00456", "price", Decimal("123.45"))),
        ("2800123123451", VariableMeasure("28", "00123", "weight", Decimal("12.345"))),
    ],
)
def test_readings_written_down(raw, expected):
    assert parser.parse(raw) == expected


@pytest.mark.parametrize(
    ("value", "today", "expected"),
    [
        ("760101", date(2026, 1, 1), date(2076, 1, 1)),  # 50 years ahead: still ahead
        ("770101", date(2026, 1, 1), date(1977, 1, 1)),  # 51 ahead: the past century
        ("720101", date(2026, 1, 1), date(2072, 1, 1)),
        ("300101", date(2080, 6, 1), date(2130, 1, 1)),  # 50 behind: the next century
        ("310101", date(2080, 6, 1), date(2031, 1, 1)),  # 49 behind: this one
        ("000101", date(2000, 1, 1), date(2000, 1, 1)),
        ("100101", date(2010, 5, 5), date(2010, 1, 1)),
        ("991231", date(2000, 1, 1), date(1999, 12, 31)),
        ("240200", date(2026, 1, 1), date(2024, 2, 29)),
        ("250200", date(2026, 1, 1), date(2025, 2, 28)),
    ],
)
def test_gs1_century_window_edges(value, today, expected):
    assert parse_gs1_date(value, today=today) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("12345", "date '12345' is not YYMMDD"),
        ("1234567", "date '1234567' is not YYMMDD"),
        ("12a456", "date '12a456' is not YYMMDD"),
        ("261301", "date '261301' has month 13"),
        ("260001", "date '260001' has month 00"),
        ("260431", "date '260431' has day 31"),
    ],
)
def test_gs1_date_refusals_word_for_word(value, message):
    with pytest.raises(ValueError) as info:
        parse_gs1_date(value, today=date(2026, 1, 1))
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("ais", "text"),
    [
        ({"10": "ABC"}, "10ABC"),
        ({"10": "A", "21": "B"}, f"10A{GS}21B"),
        ({"01": "09501101530003", "10": "A", "17": "261231"}, f"{GTIN_AI}10A{GS}17261231"),
        ({"30": "12", "10": "A"}, f"3012{GS}10A"),
        ({"01": "09501101530003", "17": "261231"}, "010950110153000317261231"),
    ],
)  # fmt: skip
def test_element_string_written_out(ais, text):  # GTIN_AI: (01) and its 14 digits
    assert element_string(ais) == text


def price_check_oracle(value: str) -> str:
    """GS1 7.9.3 by its definition: weights 2-, 2-, 3, 5- (n-: n x digit minus the
    product's tens digit, units digit; 3: units digit of 3 x digit); sum x 3, units digit."""

    def minus(weight: int, digit: int) -> int:
        product = weight * digit
        return (product - product // 10) % 10

    d = [int(c) for c in value]
    return str((minus(2, d[0]) + minus(2, d[1]) + (3 * d[2]) % 10 + minus(5, d[3])) * 3 % 10)


@pytest.mark.parametrize("position", range(4))
@pytest.mark.parametrize("digit", range(10))
def test_price_check_digit_every_digit_in_every_place(position, digit):
    layout = VariableMeasureLayout(prefix="22", kind="price", item_digits=5, value_check=True)
    value = ["0"] * 4
    value[position] = str(digit)
    text = "".join(value)
    code = variable_measure_code(layout, "12345", Decimal(int(text)).scaleb(-2))
    assert code == gtin("2212345" + price_check_oracle(text) + text)


def test_scale_label_codes_written_out():
    layout = VariableMeasureLayout(prefix="21", kind="price", item_digits=5)
    assert variable_measure_code(layout, "456", Decimal("4.37")) == "2100456004374"
    with pytest.raises(ValueError) as info:
        variable_measure_code(layout, "456", Decimal("1000.00"))
    assert str(info.value) == "1000.00 does not fit in 5 digits"


@pytest.mark.parametrize(
    ("upca", "upce"),
    [
        ("042100005264", "04252614"),  # m[2] in 0-2, m[3:7] = 0000: 0 42 526 1 + check 4
        ("012300000451", "01234531"),  # m[3:8] = 00000: 0 123 45 3 + check 1
        ("012340000060", "01234640"),  # m[4:9] = 00000: 0 1234 6 4 + check 0
        ("012345000058", "01234558"),  # m[5:9] = 0000, last 5-9: 0 12345 5 + check 8
    ],
)
def test_compress_and_expand_upce_written_out(upca, upce):
    assert compress_upca(upca) == upce and expand_upce(upce) == upca


@pytest.mark.parametrize("upca", ["012345678905", "212300000457", "012345600055"])
def test_upca_that_cannot_be_compressed(upca):
    assert compress_upca(upca) is None


def test_a_bad_price_check_digit_word_for_word():
    layout = VariableMeasureLayout(prefix="22", kind="price", item_digits=5, value_check=True)
    custom = BarcodeParser(BarcodeConfig(variable_measure=[layout]))
    raw = gtin("2212345" + "0" + "2875")  # the price check digit is 9
    with pytest.raises(BarcodeError) as info:
        custom.parse(raw)
    assert (info.value.reason, info.value.raw) == ("bad price check digit", raw)
