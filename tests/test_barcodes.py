from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk import numbers
from kiosk.config import BarcodeConfig, MoneyConfig, VariableMeasureLayout
from kiosk.ledger import barcodes, catalog
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
    contained_gtin,
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


# ---------------------------------------------------------------- every GS1 AI a shop meets

# The AI table's facts, written down from the GS1 General Specifications (section 3, the
# AI summary; Figure 7.8.5-2 for the predefined lengths) rather than read from the code:
# AI -> (longest data, digits only, FNC1 needed after it when not last).
GS1_FACTS = {
    "00": (18, True, False), "01": (14, True, False), "02": (14, True, False),
    "10": (20, False, True), "11": (6, True, False), "13": (6, True, False),
    "15": (6, True, False), "16": (6, True, False), "17": (6, True, False),
    "20": (2, True, False), "21": (20, False, True), "22": (20, False, True),
    "235": (28, False, True), "240": (30, False, True), "241": (30, False, True),
    "242": (6, True, True), "243": (20, False, True), "250": (30, False, True),
    "251": (30, False, True), "30": (8, True, True), "37": (8, True, True),
    **{f"31{d}{n}": (6, True, False) for d in "0123456" for n in range(6)},
    **{f"32{d}{n}": (6, True, False) for d in "0123456789" for n in range(6)},
    **{f"33{d}{n}": (6, True, False) for d in "01234567" for n in range(6)},
    **{f"34{d}{n}": (6, True, False) for d in "0123456789" for n in range(6)},
    **{f"35{d}{n}": (6, True, False) for d in "01234567" for n in range(6)},
    **{f"36{d}{n}": (6, True, False) for d in "0123456789" for n in range(6)},
    **{f"39{d}{n}": (15, True, True) for d in "02" for n in range(10)},
    **{f"39{d}{n}": (18, True, True) for d in "13" for n in range(10)},
    **{f"395{n}": (6, True, True) for n in range(6)},
    "422": (3, True, True), "423": (15, True, True), "424": (3, True, True),
    "425": (15, True, True), "426": (3, True, True), "427": (3, False, True),
    "7002": (30, False, True), "7003": (10, True, True), "7005": (12, False, True),
    "7006": (6, True, True), "7007": (12, True, True), "7008": (3, False, True),
    "7009": (10, False, True), "7010": (2, False, True), "7011": (10, True, True),
    **{f"703{n}": (30, False, True) for n in range(10)},
    "8005": (6, True, True), "8008": (12, True, True), "8020": (25, False, True),
    "8200": (70, False, True), "90": (30, False, True),
    **{f"9{n}": (90, False, True) for n in range(1, 10)},
}  # fmt: skip


def test_the_ai_table_is_the_standards():
    assert set(barcodes.AIS) == set(GS1_FACTS)
    for ai, (longest, digits_only, fnc1) in GS1_FACTS.items():
        parts = barcodes.AIS[ai]
        assert sum(p.most for p in parts) == longest, ai
        assert all(p.kind == "n" for p in parts) == digits_only, ai
        assert (ai[:2] not in barcodes.PREDEFINED) == fnc1, ai


# One valid value per AI kind, the longest the AI takes (written out by hand).
GOOD_VALUES = {
    "00": "376104250021234569", "01": "09501101530003", "02": "09501101530003",
    "10": "ABC-123/x.1", "11": "250101", "13": "251130", "15": "260200", "16": "261231",
    "17": "270615", "20": "07", "21": "S" * 20, "22": "CPV%1", "235": "T" * 28,
    "240": "A" * 30, "241": "PART-9", "242": "123456", "243": "PCN1", "250": "SEC-1",
    "251": "SRC-1", "30": "12", "37": "00001000", "3103": "001250", "3202": "002205",
    "3150": "000002", "3125": "123456", "3922": "2499", "3932": "978" + "2499",
    "3902": "1000", "3912": "978" + "1000", "3952": "000199", "422": "276", "423": "276040528",
    "424": "250", "425": "276040", "426": "756", "427": "BY", "7002": "UN/ECE-1234",
    "7003": "2612311430", "7005": "27.IV.a", "7006": "260115", "7007": "260101260131",
    "7008": "COD", "7009": "OTB", "7010": "01", "7011": "2601151200", "7030": "276DE-BY-123",
    "8005": "000249", "8008": "26013109", "8020": "REF-1", "8200": "https://example.com/p",
    "90": "X" * 30, "99": "Y" * 90,
}  # fmt: skip


@pytest.mark.parametrize(("ai", "value"), sorted(GOOD_VALUES.items()))
def test_each_ai_alone_and_after_a_gtin(ai, value):
    assert parser.parse(f"({ai}){value}").ais == {ai: value}
    if ai not in ("01", "02"):
        assert parser.parse("]C1" + element_string({"01": GTIN_AI[2:], ai: value})).ais == {
            "01": GTIN_AI[2:],
            ai: value,
        }


@given(
    st.lists(
        st.sampled_from(
            sorted(set(GOOD_VALUES) - {"01", "02", "3202", "3912", "3902", "3932", "8005"})
        ),
        min_size=1,
        max_size=6,
        unique=True,
    ),
    st.sampled_from(["]C1", "]d2", "]Q3", "]e0", ""]),
)
def test_element_strings_of_any_ais_in_any_order_round_trip(chosen, identifier):
    ais = {ai: GOOD_VALUES[ai] for ai in chosen}
    text = element_string(ais)
    if identifier or GS in text or text.isdigit() and text[:2] in ("01", "02"):
        assert parser.parse(identifier + text).ais == ais
    # Every AI that is not of predefined length ends with FNC1 unless it is last.
    for ai in chosen[:-1]:
        assert (ai + ais[ai] + GS in text) == (ai[:2] not in barcodes.PREDEFINED)


@pytest.mark.parametrize("n", range(6))
def test_implied_decimals_of_a_weight(n):
    parsed = parser.parse(f"]C1{GTIN_AI}310{n}001234")
    grams = (Decimal(1234).scaleb(-n)).quantize(Decimal("0.001"), ROUND_HALF_EVEN)
    assert parsed.weight_kg == grams and parsed.measures == {
        "net weight": (Decimal(1234).scaleb(-n), "kg")
    }


@pytest.mark.parametrize("n", range(10))
def test_implied_decimals_of_a_price_and_an_amount(n):
    digits = "1" + "0" * n  # the whole amount 1, with n zeros after the implied point
    price = parser.parse(f"]C1{GTIN_AI}392{n}{digits}").price
    amount = parser.parse(f"]C1{GTIN_AI}391{n}978{digits}").amount_payable
    assert price == amount == 1  # trailing zeros are no decimals of a cent
    if n <= 2:
        assert parser.parse(f"]C1{GTIN_AI}392{n}" + "199").price == Decimal(199).scaleb(-n)
    else:  # a third decimal of a cent is refused, whatever the AI says
        tiny = "0." + "0" * (n - 1) + "1"
        with pytest.raises(BarcodeError) as info:
            parser.parse(f"]C1{GTIN_AI}392{n}" + "1")
        assert info.value.reason == f"price '{tiny}' must have at most 2 decimal(s)"


def test_what_fresh_food_labels_say():
    label = parser.parse(
        "]C1" + "0194012345678904" + "3202" + "001250" + "3932" + "978" + "1299" + GS
        + "422" + "276" + GS + "7003" + "2612311430" + GS + "10" + "LOT1" + GS
        + "11" + "260101" + "13" + "260102" + "16" + "261230" + "3952" + "000799" + GS + "21" + "S1"
    )  # fmt: skip
    assert label.gtin == "94012345678904" and label.contained_gtin is None  # 9: variable
    assert label.weight_kg == Decimal("5.670")  # 12.50 lb x 0.45359237 = 5.66990 kg
    assert (label.price, label.currency, label.amount_payable) == (Decimal("12.99"), "EUR", None)
    assert label.unit_price == Decimal("7.99") and label.origin == "276"
    assert label.expiry_time == datetime(2026, 12, 31, 14, 30)
    assert (label.produced, label.packed, label.sell_by) == (
        date(2026, 1, 1),
        date(2026, 1, 2),
        date(2026, 12, 30),
    )
    assert (label.batch, label.serial, label.sscc, label.count) == ("LOT1", "S1", None, None)
    assert label.measures == {"net weight": (Decimal("12.50"), "lb")}
    bare = parser.parse("(01)09501101530003")
    assert (bare.expiry_time, bare.origin, bare.unit_price, bare.currency) == (None,) * 4
    assert (bare.weight_kg, bare.price, bare.amount_payable, bare.measures) == (None,) * 3 + ({},)
    assert (bare.expiry, bare.best_before, bare.sell_by, bare.packed, bare.produced) == (None,) * 5
    assert parser.parse("(00)376104250021234569").sscc == "376104250021234569"
    amount = parser.parse(f"]C1{GTIN_AI}3902" + "1000")
    assert (amount.amount_payable, amount.price, amount.currency) == (Decimal("10.00"), None, None)


@pytest.mark.parametrize(
    ("case", "indicator", "item"),
    [
        ("14001234000012", 1, "04001234000015"),  # 1 + 400123400001 + check 2; item check 5
        (gtin("8400638133393"), 8, "04006381333931"),
        (gtin("5003600029145"), 5, "00036000291452"),
    ],
)
def test_a_case_gtin_14_names_its_indicator_and_the_item_inside(case, indicator, item):
    parsed = parser.parse(case)
    assert parsed == Gtin(case, "GTIN-14")
    assert (parsed.indicator, parsed.contained_gtin) == (indicator, item)
    assert parser.parse(f"(01){case}(30)2").contained_gtin == item
    assert parser.parse(f"(02){case}(37)2").contained_gtin is None  # (02) is the content


def test_a_single_item_has_indicator_0_and_no_contained_gtin():
    parsed = parser.parse("4006381333931")
    assert (parsed.indicator, parsed.contained_gtin) == (0, None)
    assert contained_gtin(gtin("9400123400001")) is None  # 9: a variable-measure item
    assert contained_gtin("4006381333931") is None  # 13 digits: not a GTIN-14


def shop_in(currency: str) -> BarcodeParser:  # made in the test: mutation testing sees it
    return BarcodeParser(money=MoneyConfig(currency=currency, cash_rounding=Decimal(1)))


def test_a_price_in_a_currency_is_accepted_in_the_shops_currency_only():
    usd, jpy = shop_in("USD"), shop_in("JPY")
    assert (BarcodeParser().money.currency, usd.money.currency) == ("EUR", "USD")
    assert usd.parse("0109501101530003" + "3932840" + "1299").price == Decimal("12.99")  # no GS
    assert usd.parse(f"]C1{GTIN_AI}3932840" + "1299").price == Decimal("12.99")
    assert usd.parse(f"]C1{GTIN_AI}3912840" + "1299").amount_payable == Decimal("12.99")
    assert jpy.parse(f"]C1{GTIN_AI}3930392" + "1200").price == 1200
    assert jpy.parse(f"]C1{GTIN_AI}3932392" + "120000").price == 1200  # 1200.00
    assert parser.parse(f"]C1{GTIN_AI}3932978" + "1299").currency == "EUR"


GS1_REFUSALS = [
    # unknown AIs, and decimals a family does not have
    (f"]C1{GTIN_AI}50123", "unsupported application identifier (50..)"),
    (f"]C1{GTIN_AI}3106001250", "unsupported application identifier (3106)"),
    (f"]C1{GTIN_AI}3956000199", "unsupported application identifier (3956)"),
    (f"]C1{GTIN_AI}4281", "unsupported application identifier (42..)"),
    ("(3106)001250", "unsupported application identifier (3106)"),
    ("(703)276ABC", "unsupported application identifier (703)"),
    # check digits
    ("(00)376104250021234568", "bad check digit in AI (00)"),
    ("(02)09501101530004", "bad check digit in AI (02)"),
    # digits where digits belong, the GS1 set elsewhere
    ("(3103)00125A", "AI (3103) must be digits"),
    ("(422)27A", "AI (422) must be digits"),
    ("(8005)\u0661\u0662\u0663456", "AI (8005) must be digits"),  # Arabic-Indic digits
    ("(7030)27XABC", "AI (7030) must be digits"),
    ("(10)AB CD", "AI (10) has characters outside the GS1 set"),
    ("(21)A#1", "AI (21) has characters outside the GS1 set"),
    ("(7030)276AB\u00c9", "AI (7030) has characters outside the GS1 set"),
    # lengths
    ("(7003)26123114", "truncated AI (7003): needs 10 digits, got 8"),
    ("(7007)2601012601", "truncated AI (7007): needs 6 or 12 digits, got 10"),
    ("(8008)260131091", "truncated AI (8008): needs 8, 10 or 12 digits, got 9"),
    ("(3932)978", "truncated AI (3932): needs at least 4 digits, got 3"),
    ("(423)2760", "truncated AI (423): needs 3, 6, 9, 12 or 15 digits, got 4"),
    ("(7030)27", "truncated AI (7030): needs at least 4 characters, got 2"),
    ("(3922)" + "1" * 16, "AI (3922) is longer than 15 characters"),
    ("(99)" + "Y" * 91, "AI (99) is longer than 90 characters"),
    ("(8200)" + "u" * 71, "AI (8200) is longer than 70 characters"),
    ("(20)123", "AI (20) is longer than 2 characters"),
    # a missing FNC1 after an AI that needs one
    (f"]C1{GTIN_AI}422276" + "3922199", "AI (422) is longer than 3 characters"),
    (f"]C1{GTIN_AI}3012" + "10ABC", "AI (30) must be digits"),
    (f"]C1{GTIN_AI}3922199" + "17261231", "price '199172612.31' must be from 0 to 10000000"),
    (f"]C1{GTIN_AI}7003" + "2612311430" + "10A", "AI (7003) is longer than 10 characters"),
    # contents
    ("(422)999", "AI (422) has an unknown country code 999"),
    ("(423)276999", "AI (423) has an unknown country code 999"),
    ("(7030)000ABC", "AI (7030) has an unknown country code 000"),
    ("(3932)0001299", "AI (3932) has an unknown currency code 000"),
    ("(7006)260100", "bad date in AI (7006): date '260100' has day 00"),
    ("(7003)2613011430", "bad date in AI (7003): date '261301' has month 13"),
    ("(7003)2612312400", "bad time in AI (7003): '2400'"),
    ("(7003)2612311260", "bad time in AI (7003): '1260'"),
    ("(7011)2601152360", "bad time in AI (7011): '2360'"),
    ("(8008)2601312400", "bad time in AI (8008): '24'"),
    ("(8008)260131236000", "bad time in AI (8008): '60'"),
    ("(8008)260131235960", "bad time in AI (8008): '60'"),
    ("(30)0", "AI (30) counts no items"),
    ("(37)00000000", "AI (37) counts no items"),
    # one of each: weight, price, amount, price per unit; no AI twice
    (f"]C1{GTIN_AI}3103001250" + "3202002205", "more than one weight or price AI"),
    (f"]C1{GTIN_AI}3922199{GS}3932978199", "more than one weight or price AI"),
    (f"]C1{GTIN_AI}3902199{GS}3912978199", "more than one weight or price AI"),
    (f"]C1{GTIN_AI}3952000199{GS}8005000199", "more than one weight or price AI"),
    (f"]C1{GTIN_AI}3112000123" + "3113001230", "AI (311n) appears twice"),
    ("(422)276(422)250", "AI (422) appears twice"),
    # the shop's currency and the numbers' bounds
    (f"]C1{GTIN_AI}3932840" + "1299", "price in USD (840), the shop sells in EUR"),
    (f"]C1{GTIN_AI}3912756" + "1299", "amount in CHF (756), the shop sells in EUR"),
    (f"]C1{GTIN_AI}3922" + "1000000001", "price '10000000.01' must be from 0 to 10000000"),
    (f"]C1{GTIN_AI}3900" + "10000001", "amount '10000001' must be from 0 to 10000000"),
    (f"]C1{GTIN_AI}3923" + "1999", "price '1.999' must have at most 2 decimal(s)"),
    (f"]C1{GTIN_AI}3913978" + "1999", "amount '1.999' must have at most 2 decimal(s)"),
    ("(3100)010000", "net weight (kg) '10000.000' must be from 0.001 to 9999"),
    ("(3103)000000", "net weight (kg) '0.000' must be from 0.001 to 9999"),
    ("(3105)000050", "net weight (kg) '0.000' must be from 0.001 to 9999"),  # half to even
    ("(3200)022046", "net weight (kg) '9999.897' must be from 0.001 to 9999"),  # 9999.8973...
    ("(30)1000001", "count '1000001' must be from 1 to 1000000"),
]


@pytest.mark.parametrize(("raw", "reason"), GS1_REFUSALS)
def test_gs1_refusals_word_for_word(raw, reason):
    with pytest.raises(BarcodeError) as info:
        parser.parse(raw)
    assert info.value.reason == reason
    assert info.value.raw == raw and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("currency", "raw", "reason"),
    [
        ("USD", f"]C1{GTIN_AI}3932978" + "1299", "price in EUR (978), the shop sells in USD"),
        ("JPY", f"]C1{GTIN_AI}3932392" + "1250", "price '12.50' must have a whole number"),
        ("JPY", f"]C1{GTIN_AI}3922" + "1250", "price '12.50' must have a whole number"),
    ],
)
def test_currency_refusals_in_other_shops(currency, raw, reason):
    with pytest.raises(BarcodeError) as info:
        shop_in(currency).parse(raw)
    assert info.value.reason == reason


def test_the_boundaries_themselves_are_accepted():
    assert parser.parse(f"]C1{GTIN_AI}3922" + "1000000000").price == numbers.MAX_MONEY
    assert parser.parse("(3100)009999").weight_kg == numbers.MAX_WEIGHT
    assert parser.parse("(3105)000051").weight_kg == Decimal("0.001")  # 0.51 g: 1 g
    assert parser.parse("(3105)000150").weight_kg == Decimal("0.002")  # 1.5 g: to even, 2 g
    assert parser.parse("(3200)022044").weight_kg == Decimal("9998.990")  # 9998.9903...
    assert parser.parse("(30)1000000").count == numbers.MAX_STOCK_QTY
    assert parser.parse("(3950)999999").unit_price == 999999
    assert parser.parse("(3922)0").price == 0
    assert parser.parse("(8008)260131235959").ais == {"8008": "260131235959"}
    assert parser.parse("(7003)2612312359").expiry_time == datetime(2026, 12, 31, 23, 59)


@pytest.mark.parametrize(
    "data",
    [
        b"]C10109501101530003\x1d10AB\xff\xfe",  # invalid UTF-8 from a serial scanner
        b"]C10109501101530003\x1d10AB\xc3",  # a cut multi-byte character
        b"]C10109501101530003\x1d10A\x00B",
        b"]C10109501101530003\x1d10A\x1bB",
        b"(10)A\x7fB",
    ],
)
def test_bytes_that_are_not_gs1_text_are_refused(data):
    raw = data.decode("utf-8", "replace")  # what SerialScanner hands on
    with pytest.raises(BarcodeError) as info:
        parser.parse(raw)
    assert info.value.reason in (
        "AI (10) has characters outside the GS1 set",
        "control characters in scan (check the scanner's setup)",
    )


def test_a_393n_price_and_a_320n_weight_reach_the_cart_as_the_392n_ones_do(shop):
    """The checkout reads only the parsed result: (393n) in the shop's currency is the
    line's amount like (392n), (320n) pounds its weight like (310n) kilograms."""
    coffee = "0100036000291452"
    priced = catalog.resolve_scan(shop.parser.parse(f"]C1{coffee}3932978" + "899"))
    assert (priced.item.sku, priced.qty, priced.amount) == ("COFFEE", 1, Decimal("8.99"))
    weighed = catalog.resolve_scan(shop.parser.parse(f"]C1{coffee}3202" + "000250"))
    assert (weighed.qty, weighed.amount) == (Decimal("1.134"), None)
    with pytest.raises(BarcodeError, match=r"price in USD \(840\), the shop sells in EUR"):
        shop.parser.parse(f"]C1{coffee}3932840" + "899")
