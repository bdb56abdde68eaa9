"""Independent oracles: every expected value here is written down by hand (the working
is in the comments) or computed another way, never with the function under test.

Each covers a claim of the README that a plausible bug could break while the rest of
the suite stays green: the last part of a return takes the remainder, refunds go to
card, then voucher, then cash, half-way amounts round up, a bundle returned without a
receipt puts its components back, UPC-E and scale-label check digits are checked,
guessing PINs at the pad locks the pad, the ledger runs with the documented
`synchronous` setting."""

from __future__ import annotations

import json
import sqlite3
import threading
from decimal import Decimal

import pytest

from kiosk.config import BarcodeConfig, ConfigError, VariableMeasureLayout, parse
from kiosk.ledger import catalog_csv, sales, staff, stock
from kiosk.ledger.barcodes import BarcodeError, BarcodeParser, Gtin, VariableMeasure
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.models import Audit, Outbox, Staff, Tender, Txn, TxnLine
from kiosk.ledger.money import LineInput, MoneyError, TaxPolicy, price_line, round_cash, settle
from kiosk.ledger.money import Tender as Pay
from kiosk.ledger.sales import ReturnLine, SaleLine
from kiosk.ledger.verify import verify
from tests.conftest import D


def refund_tenders(posted) -> list[tuple[str, Decimal]]:
    rows = Tender.select().where(Tender.txn == posted.id).order_by(Tender.id)
    return [(t.kind, t.amount) for t in rows]


def line_parts(posted) -> list[tuple[Decimal, ...]]:
    rows = TxnLine.select().where(TxnLine.txn == posted.id).order_by(TxnLine.line_no)
    return [(li.qty, li.gross, li.discount, li.net, li.tax, li.total) for li in rows]


def last_event() -> dict:
    return json.loads(Outbox.select().order_by(Outbox.seq.desc()).get().payload)


# ---------------------------------------------------------------- returns in parts


def test_a_line_returned_in_three_parts_refunds_exactly_what_was_paid(shop):
    # 3 pens at 1.49 = 4.47 gross, 0.47 discount: 4.00 paid. Tax A is 19 % included:
    # 4.00 x 19 / 119 = 0.6386... -> 0.64, net 3.36.
    sale = sales.post_sale(
        shop, [SaleLine("PEN", D("3"), discount=D("0.47"))], [Pay("card", D("4.00"), "A1")]
    )
    assert line_parts(sale) == [(3, D("4.47"), D("0.47"), D("3.36"), D("0.64"), D("4.00"))]
    parts = [
        sales.post_return(shop, [ReturnLine("PEN")], "unwanted", "C1", receipt=sale.number)
        for _ in range(3)
    ]
    # One third each, rounded: gross 4.47/3 = 1.49; discount 0.47/3 = 0.1566 -> 0.16;
    # tax 0.64/3 = 0.2133 -> 0.21; total 4.00/3 = 1.3333 -> 1.33; net = total - tax.
    one_third = (D("-1"), D("-1.49"), D("-0.16"), D("-1.12"), D("-0.21"), D("-1.33"))
    assert line_parts(parts[0]) == [one_third]
    assert line_parts(parts[1]) == [one_third]
    # The last part takes what is left: gross 4.47 - 2.98 = 1.49, discount 0.47 - 0.32
    # = 0.15, tax 0.64 - 0.42 = 0.22, total 4.00 - 2.66 = 1.34, net 1.34 - 0.22 = 1.12.
    assert line_parts(parts[2]) == [
        (D("-1"), D("-1.49"), D("-0.15"), D("-1.12"), D("-0.22"), D("-1.34"))
    ]
    assert [p.total for p in parts] == [D("-1.33"), D("-1.33"), D("-1.34")]
    # Back to the card (no cash rounding): 1.33 + 1.33 + 1.34 = 4.00, what it paid.
    assert [refund_tenders(p) for p in parts] == [
        [("card", D("-1.33"))],
        [("card", D("-1.33"))],
        [("card", D("-1.34"))],
    ]
    assert verify(shop) == []


def test_a_weighed_line_returned_in_parts_takes_the_remainder(shop):
    # 0.532 kg of bananas at 1.99 = 1.05868 -> 1.06; tax B 7 % included:
    # 1.06 x 7 / 107 = 0.0693 -> 0.07.
    sale = sales.post_sale(shop, [SaleLine("BANANA", D("0.532"))], [Pay("card", D("1.06"), "A")])
    first = sales.post_return(
        shop, [ReturnLine("BANANA", D("0.266"))], "unwanted", "C1", receipt=sale.number
    )
    # Half: 1.06 / 2 = 0.53, tax 0.07 / 2 = 0.035 -> 0.04 (half up), net 0.49.
    assert line_parts(first) == [(D("-0.266"), D("-0.53"), 0, D("-0.49"), D("-0.04"), D("-0.53"))]
    rest = sales.post_return(
        shop, [ReturnLine("BANANA", D("0.266"))], "unwanted", "C1", receipt=sale.number
    )
    # The rest: 1.06 - 0.53 = 0.53, tax 0.07 - 0.04 = 0.03, net 0.50.
    assert line_parts(rest) == [(D("-0.266"), D("-0.53"), 0, D("-0.50"), D("-0.03"), D("-0.53"))]
    assert stock.on_hand("BANANA") == 0  # -532 g sold, 266 g back twice


# ---------------------------------------------------------------- refund order


def test_mixed_tenders_are_refunded_card_then_voucher_then_cash(shop):
    # README, Ledger: "a refund goes back to the original card/voucher tenders first,
    # the rest in cash" (card before voucher, each up to what it paid less earlier
    # refunds to it). Charger 19.99 + pen 1.49 = 21.48; voucher 5.00 and card 3.00
    # leave 13.48 in cash, rounded to 13.50 (+0.02); 20.00 given, 6.50 change.
    sale = sales.post_sale(
        shop,
        [SaleLine("CHARGER"), SaleLine("PEN")],
        [Pay("voucher", D("5.00"), "V1"), Pay("card", D("3.00"), "A1"), Pay("cash", D("20.00"))],
    )
    assert (sale.total, sale.rounding, sale.change) == (D("21.48"), D("0.02"), D("6.50"))
    pen = sales.post_return(shop, [ReturnLine("PEN")], "unwanted", "C1", receipt=sale.number)
    assert refund_tenders(pen) == [("card", D("-1.49"))]  # all of it fits on the card
    charger = sales.post_return(
        shop, [ReturnLine("CHARGER")], "unwanted", "C1", receipt=sale.number
    )
    # 19.99: the card's last 1.51 (3.00 - 1.49), the voucher's 5.00, then 13.48 in
    # cash, rounded to 13.50 (-0.02 rounding on the refund).
    assert refund_tenders(charger) == [
        ("card", D("-1.51")),
        ("voucher", D("-5.00")),
        ("cash", D("-13.50")),
    ]
    assert (charger.total, charger.rounding, charger.change) == (D("-19.99"), D("-0.02"), 0)
    # 21.50 went in net (5.00 + 3.00 + 20.00 - 6.50); 1.49 + 1.51 + 5.00 + 13.50 came out.
    assert verify(shop) == []


def test_a_voucher_only_sale_is_refunded_to_the_voucher(shop):
    sale = sales.post_sale(shop, [SaleLine("CABLE")], [Pay("voucher", D("9.99"), "V7")])
    back = sales.post_return(shop, [ReturnLine("CABLE")], "unwanted", "C1", receipt=sale.number)
    assert refund_tenders(back) == [("voucher", D("-9.99"))] and back.rounding == 0


def test_a_cash_refund_is_rounded_half_up_to_the_cash_step(shop):
    # Coffee 8.99 paid in cash: 9.00 taken (8.99 -> 9.00). Returned without the card
    # in play: 8.99 back in cash rounds to 9.00 again.
    sale = sales.post_sale(shop, [SaleLine("COFFEE")], [Pay("cash", D("10.00"))])
    assert (sale.rounding, sale.change) == (D("0.01"), D("1.00"))
    back = sales.post_return(shop, [ReturnLine("COFFEE")], "unwanted", "C1", receipt=sale.number)
    assert refund_tenders(back) == [("cash", D("-9.00"))] and back.rounding == D("-0.01")


# ---------------------------------------------------------------- rounding half-way


@pytest.mark.parametrize(
    ("amount", "step", "unit", "expected"),
    [
        # 0.10 steps: 1.25 is 12.5 steps -> 13 (half-even would give 12, 1.20)
        ("1.25", "0.10", "0.01", "1.30"),
        ("1.45", "0.10", "0.01", "1.50"),  # 14.5 -> 15 (half-even: 14)
        ("1.35", "0.10", "0.01", "1.40"),
        ("1.24", "0.10", "0.01", "1.20"),
        ("-1.25", "0.10", "0.01", "-1.30"),  # refunds: away from zero too
        ("-0.05", "0.10", "0.01", "-0.10"),
        ("0.05", "0.10", "0.01", "0.10"),
        # 0.05 steps: with cents no amount is half-way, so the nearest step
        ("1.02", "0.05", "0.01", "1.00"),
        ("1.03", "0.05", "0.01", "1.05"),
        ("1.07", "0.05", "0.01", "1.05"),
        ("1.08", "0.05", "0.01", "1.10"),
        ("-1.03", "0.05", "0.01", "-1.05"),
        # ... and with a three-decimal currency it is: 1.025 is 20.5 steps -> 21
        ("1.025", "0.05", "0.001", "1.050"),
        ("1.075", "0.05", "0.001", "1.100"),  # 21.5 -> 22 (half-even: 22 as well)
        ("1.125", "0.05", "0.001", "1.150"),  # 22.5 -> 23 (half-even: 22)
        ("-1.025", "0.05", "0.001", "-1.050"),
        ("1.00", "0.01", "0.01", "1.00"),
        ("2.50", "0.50", "0.01", "2.50"),
        ("2.25", "0.50", "0.01", "2.50"),  # 4.5 -> 5
        ("2.75", "1", "0.01", "3.00"),
        ("2.50", "1", "0.01", "3.00"),  # 2.5 -> 3 (half-even: 2)
    ],
)
def test_cash_rounding_half_way_goes_away_from_zero(amount, step, unit, expected):
    result = round_cash(D(amount), D(step), D(unit))
    assert result == D(expected) and str(result) == expected  # to the minor unit


def test_settling_at_a_ten_cent_step():
    tenth = TaxPolicy({"A": D("0.19")}, cash_step=D("0.10"))
    # 1.25 due: cash 1.30 (+0.05); 2.00 given, 0.70 change.
    result = settle(D("1.25"), [Pay("cash", D("2.00"))], tenth)
    assert (result.rounding, result.change, result.tendered) == (D("0.05"), D("0.70"), D("2.00"))
    # A card pays 0.20 first: 1.05 left in cash, 10.5 steps -> 1.10.
    result = settle(D("1.25"), [Pay("card", D("0.20")), Pay("cash", D("1.10"))], tenth)
    assert (result.rounding, result.change) == (D("0.05"), 0)
    with pytest.raises(MoneyError, match="does not cover"):
        settle(D("1.25"), [Pay("cash", D("1.20"))], tenth)  # half-even's 1.20 is short
    # A refund of 1.25: 1.30 in cash, rounding -0.05.
    result = settle(D("-1.25"), [Pay("cash", D("-1.30"))], tenth)
    assert (result.rounding, result.change) == (D("-0.05"), 0)


def test_cash_rounding_in_a_ledger_with_a_ten_cent_step(tmp_path):
    config = parse(
        f'[device]\nid = "till-09"\n[ledger]\npath = "{tmp_path / "l.db"}"\n'
        '[money]\ncash_rounding = "0.10"\n'
    )
    with Ledger.open(config) as ledger:
        catalog_csv.import_text(ledger, "sku,name,price,tax\nGUM,Gum,1.25,A\nTEA,Tea,1.45,B\n")
        gum = sales.post_sale(ledger, [SaleLine("GUM")], [Pay("cash", D("5.00"))])
        assert (gum.rounding, gum.change) == (D("0.05"), D("3.70"))  # 1.30 taken
        tea = sales.post_sale(ledger, [SaleLine("TEA")], [Pay("cash", D("1.50"))])
        assert (tea.rounding, tea.change) == (D("0.05"), 0)  # 1.45 -> 1.50
        assert verify(ledger) == []


@pytest.mark.parametrize(
    ("qty", "price", "code", "inclusive", "total", "tax"),
    [
        # tax-exclusive, 7 %: 1.50 x 0.07 = 0.105 -> 0.11 (half-even: 0.10)
        ("1", "1.50", "B", False, "1.61", "0.11"),
        ("-1", "1.50", "B", False, "-1.61", "-0.11"),
        # 0.50 x 0.19 = 0.095 -> 0.10
        ("1", "0.50", "A", False, "0.60", "0.10"),
        # 2.50 x 0.07 = 0.175 -> 0.18 (half-even: 0.18)
        ("1", "2.50", "B", False, "2.68", "0.18"),
        # 6.50 x 0.07 = 0.455 -> 0.46
        ("1", "6.50", "B", False, "6.96", "0.46"),
        # tax-inclusive at 100 %: tax = amount / 2; 0.21 / 2 = 0.105 -> 0.11, net 0.10
        ("1", "0.21", "H", True, "0.21", "0.11"),
        ("1", "0.01", "H", True, "0.01", "0.01"),  # 0.005 -> 0.01, net 0.00
        ("-1", "0.21", "H", True, "-0.21", "-0.11"),
        # the line amount itself: 3 x 0.835 = 2.505 -> 2.51; 19 % included:
        # 2.51 x 19 / 119 = 0.4007 -> 0.40
        ("3", "0.835", "A", True, "2.51", "0.40"),
        # 0.5 kg x 0.25 = 0.125 -> 0.13; 7 % included: 0.13 x 7 / 107 = 0.0085 -> 0.01
        ("0.5", "0.25", "B", True, "0.13", "0.01"),
    ],
)
def test_line_and_tax_rounding_half_way(qty, price, code, inclusive, total, tax):
    policy = TaxPolicy({"A": D("0.19"), "B": D("0.07"), "H": D("1")}, prices_include_tax=inclusive)
    line = price_line(LineInput("X", D(qty), D(price), code), policy)
    assert (line.total, line.tax) == (D(total), D(tax))
    assert line.net == D(total) - D(tax)


# ---------------------------------------------------------------- bundles, no receipt


def test_a_bundle_returned_without_a_receipt_puts_its_components_back(shop):
    # TRAVEL is a bundle of CHARGER*1 and CABLE*1; it has no stock of its own.
    stock.receive(shop, [stock.ReceiveLine("CHARGER", 5), stock.ReceiveLine("CABLE", 5)], "S1")
    posted = sales.post_return(shop, [ReturnLine("TRAVEL", D("2"))], "unwanted", "S1")
    assert (stock.on_hand("CHARGER"), stock.on_hand("CABLE")) == (7, 7)
    assert stock.on_hand("TRAVEL") == 0
    assert last_event()["moves"] == [{"sku": "CABLE", "delta": 2}, {"sku": "CHARGER", "delta": 2}]
    # At today's price, in cash: 2 x 24.99 = 49.98 -> 50.00 (49.98 is 999.6 steps -> 1000).
    assert posted.total == D("-49.98") and refund_tenders(posted) == [("cash", D("-50.00"))]
    damaged = sales.post_return(
        shop, [ReturnLine("TRAVEL", condition="damaged")], "defective", "S1"
    )
    assert damaged.total == D("-24.99")
    assert (stock.on_hand("CHARGER", "damaged"), stock.on_hand("CABLE", "damaged")) == (1, 1)
    assert (stock.on_hand("CHARGER"), stock.on_hand("CABLE")) == (7, 7)
    assert last_event()["moves"] == []  # nothing sellable moved
    assert verify(shop) == []


def test_a_bundle_sold_and_returned_with_its_receipt_nets_to_nothing(shop):
    sale = sales.post_sale(shop, [SaleLine("TRAVEL", D("3"))], [Pay("card", D("74.97"), "A")])
    assert (stock.on_hand("CHARGER"), stock.on_hand("CABLE")) == (-3, -3)
    assert last_event()["moves"] == [{"sku": "CABLE", "delta": -3}, {"sku": "CHARGER", "delta": -3}]
    sales.post_return(shop, [ReturnLine("TRAVEL")], "unwanted", "C1", receipt=sale.number)
    assert (stock.on_hand("CHARGER"), stock.on_hand("CABLE")) == (-2, -2)
    assert last_event()["moves"] == [{"sku": "CABLE", "delta": 1}, {"sku": "CHARGER", "delta": 1}]


def test_an_exchange_without_a_receipt_moves_both_ways(shop):
    # A pen back (at today's 1.49), a cable out (9.99): 8.50 to pay, in cash 8.50.
    posted = sales.post_exchange(
        shop, None, [ReturnLine("PEN")], [SaleLine("CABLE")], [Pay("cash", D("10.00"))], "C1"
    )
    assert (posted.total, posted.rounding, posted.change) == (D("8.50"), 0, D("1.50"))
    assert (stock.on_hand("PEN"), stock.on_hand("CABLE")) == (1, -1)
    assert last_event()["moves"] == [{"sku": "CABLE", "delta": -1}, {"sku": "PEN", "delta": 1}]


# ---------------------------------------------------------------- barcodes


@pytest.mark.parametrize(
    ("raw", "gtin"),
    [
        # UPC-E 0 425261 4: expands to 0 42100 00526 with UPC-A check digit 4
        # (odd positions 0+2+0+0+5+6 = 13 x 3 = 39, even 4+1+0+0+2 = 7; 46 -> 4).
        ("04252614", "00042100005264"),
        ("]E004252614", "00042100005264"),
        # UPC-E 0 123455 8 -> 0 12345 00005, check: odd 0+2+4+0+0+5 = 11 x 3 = 33,
        # even 1+3+5+0+0 = 9; 42 -> 8.
        ("]E001234558", "00012345000058"),
    ],
)
def test_upce_with_its_own_check_digit(raw, gtin):
    assert BarcodeParser().parse(raw) == Gtin(gtin, "UPC-E")


@pytest.mark.parametrize("raw", ["04252615", "04252619", "]E004252613", "]E001234557"])
def test_upce_with_a_wrong_check_digit_is_refused(raw):
    # The eighth digit is the check digit of the expanded UPC-A: it is checked, not
    # recomputed. (Nor are 04252615 and 04252619 valid EAN-8s: from the right,
    # 1x3 + 6 + 2x3 + 5 + 2x3 + 4 + 0x3 = 30, so that check digit would be 0.)
    with pytest.raises(BarcodeError, match="bad check digit"):
        BarcodeParser().parse(raw)


def price_check_5minus(digit: int) -> int:
    """GS1 weighting factor 5-: 5 x d, minus its tens digit, units digit."""
    product = 5 * digit
    return (product - product // 10) % 10


def price_check_2minus(digit: int) -> int:
    product = 2 * digit
    return (product - product // 10) % 10


def four_digit_price_check(value: str) -> int:
    """GS1 General Specifications 7.9.3: weights 2-, 2-, 3, 5-; sum x 3, units digit."""
    d = [int(c) for c in value]
    total = price_check_2minus(d[0]) + price_check_2minus(d[1]) + (3 * d[2]) % 10
    return (total + price_check_5minus(d[3])) * 3 % 10


def ean13_check(body12: str) -> str:
    odd = sum(int(c) for c in body12[0::2])
    even = sum(int(c) for c in body12[1::2])
    return str((10 - (odd + 3 * even) % 10) % 10)


def test_price_check_digit_matches_the_gs1_example_and_definition():
    # The GS1 General Specifications' worked example: price 2875 -> 4 + 5 + 1 + 3 = 13,
    # x 3 = 39: check digit 9.
    assert four_digit_price_check("2875") == 9
    layout = VariableMeasureLayout(prefix="22", kind="price", item_digits=5, value_check=True)
    parser = BarcodeParser(BarcodeConfig(variable_measure=[layout]))
    body = "22" + "12345" + "9" + "2875"  # item 12345, price check 9, price 28.75
    assert parser.parse(body + ean13_check(body)) == VariableMeasure(
        "22", "12345", "price", D("28.75")
    )
    for wrong in "012345678":
        tampered = "22" + "12345" + wrong + "2875"
        with pytest.raises(BarcodeError, match="bad price check digit"):
            parser.parse(tampered + ean13_check(tampered))


@pytest.mark.parametrize("price", ["0123", "1234", "5555", "0505", "9876", "0009", "7070"])
def test_price_check_digit_by_the_definition(price):
    layout = VariableMeasureLayout(prefix="22", kind="price", item_digits=5, value_check=True)
    parser = BarcodeParser(BarcodeConfig(variable_measure=[layout]))
    body = f"2200001{four_digit_price_check(price)}{price}"
    parsed = parser.parse(body + ean13_check(body))
    assert parsed.value == Decimal(int(price)).scaleb(-2)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # 21 00456 00437 + check: the default price layout (5 item digits, no price check)
        ("2100456004374", VariableMeasure("21", "00456", "price", D("4.37"))),
        ("2800123005320", VariableMeasure("28", "00123", "weight", D("0.532"))),
    ],
)
def test_scale_labels_written_out(raw, expected):
    assert ean13_check(raw[:12]) == raw[12]  # the test's own check, by the book
    assert BarcodeParser().parse(raw) == expected


# ---------------------------------------------------------------- staff lockout


def test_guessing_pins_at_the_pad_locks_every_member(shop):
    # max_pin_attempts defaults to 5; with PIN alone every failure counts against
    # every active member.
    for _ in range(4):
        with pytest.raises(staff.AuthError, match="wrong PIN"):
            staff.login(shop, "0000")
    assert {m.code: m.failed_attempts for m in Staff.select()} == {"S1": 4, "C1": 4}
    assert staff.login(shop, "1234").code == "S1"  # the fifth try is right: S1 is in
    assert {m.code: m.failed_attempts for m in Staff.select()} == {"S1": 0, "C1": 4}
    with pytest.raises(staff.AuthError, match="wrong PIN"):
        staff.login(shop, "9999")  # C1's fifth failure, S1's first
    assert Staff.get(Staff.code == "C1").locked_until is not None
    assert Staff.get(Staff.code == "S1").locked_until is None
    with pytest.raises(staff.AuthError):
        staff.login(shop, "5678")  # C1's right PIN, but C1 is locked out
    with pytest.raises(staff.AuthError, match="locked out"):
        staff.login(shop, "5678", code="C1")  # with the badge it says so
    assert [a.subject for a in Audit.select().where(Audit.action == "lockout")] == ["C1"]
    assert Staff.get(Staff.code == "S1").failed_attempts == 2  # 9999, then 5678
    for _ in range(2):
        with pytest.raises(staff.AuthError, match="wrong PIN"):
            staff.login(shop, "4321")
    assert Staff.get(Staff.code == "S1").locked_until is None  # 4 failures
    with pytest.raises(staff.AuthError, match="wrong PIN"):
        staff.login(shop, "4321")
    assert Staff.get(Staff.code == "S1").locked_until is not None  # the fifth: locked
    with pytest.raises(staff.AuthError):
        staff.login(shop, "1234")  # the pad is locked: even the right PIN is refused
    assert sorted(a.subject for a in Audit.select().where(Audit.action == "lockout")) == [
        "C1",
        "S1",
    ]


# ---------------------------------------------------------------- synchronous


def pragma_synchronous(connection) -> int:
    return connection.execute("PRAGMA synchronous").fetchone()[0]


def test_every_ledger_connection_runs_with_the_documented_synchronous(config, tmp_path):
    # README, Ledger: "synchronous=FULL by default" (PRAGMA synchronous: 2 = FULL,
    # 1 = NORMAL); [ledger] synchronous = "normal" is the documented alternative.
    with Ledger.open(config) as ledger:
        assert ledger.db.execute_sql("PRAGMA synchronous").fetchone()[0] == 2
        assert ledger.db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        seen = []

        def other_thread():  # peewee keeps one connection per thread: each gets the pragma
            seen.append(ledger.db.execute_sql("PRAGMA synchronous").fetchone()[0])
            ledger.db.close()

        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join(30)
        assert seen == [2]
        # The publisher's own connection to the same file marks deliveries with NORMAL
        # on purpose (kiosk/mqtt/outbox.py: a lost mark only re-sends an event, which
        # the controller drops as a duplicate); postings never go through it.
        from kiosk.mqtt.outbox import OutboxStore

        store = OutboxStore(ledger.path)
        try:
            assert pragma_synchronous(store.conn) == 1
        finally:
            store.close()
    normal = parse(
        f'[device]\nid = "till-02"\n[ledger]\npath = "{tmp_path / "n.db"}"\n'
        'synchronous = "normal"\n'
    )
    with Ledger.open(normal) as ledger:
        assert ledger.db.execute_sql("PRAGMA synchronous").fetchone()[0] == 1
    with pytest.raises(ConfigError, match="ledger.synchronous"):
        parse('[ledger]\nsynchronous = "off"\n')  # OFF would lose sales on a power cut


def test_a_posting_commits_in_full_sync_mode_through_the_checkout_thread(shop):
    """The app posts from its checkout worker thread, not the thread that opened the
    ledger: that thread's connection runs FULL as well, and its sale is there for a
    fresh connection at once."""
    result = {}

    def post():
        result["sync"] = shop.db.execute_sql("PRAGMA synchronous").fetchone()[0]
        result["posted"] = sales.post_sale(shop, [SaleLine("PEN")], [Pay("card", D("1.49"), "A")])
        shop.db.close()

    worker = threading.Thread(target=post)
    worker.start()
    worker.join(30)
    assert result["sync"] == 2
    with sqlite3.connect(shop.path) as fresh:
        rows = fresh.execute("SELECT number, total FROM txn WHERE kind = 'sale'").fetchall()
    assert rows == [(result["posted"].number, "1.49")]


def test_an_over_return_leaves_nothing_behind(shop):
    sale = sales.post_sale(shop, [SaleLine("PEN")], [Pay("card", D("1.49"), "A")])
    with pytest.raises(LedgerError, match="only 1 of PEN can still be returned"):
        sales.post_return(shop, [ReturnLine("PEN", D("2"))], "unwanted", "C1", receipt=sale.number)
    assert (Txn.select().count(), Outbox.select().count(), stock.on_hand("PEN")) == (1, 1, -1)


def test_a_cash_rest_that_rounds_to_nothing_can_be_refunded(shop):
    # PEN 1.49: card 1.47, the 0.02 left in cash rounds to 0.00 (5.00 given, all back).
    sale = sales.post_sale(
        shop, [SaleLine("PEN")], [Pay("card", D("1.47"), "A"), Pay("cash", D("5.00"))]
    )
    assert (sale.rounding, sale.change) == (D("-0.02"), D("5.00"))
    back = sales.post_return(shop, [ReturnLine("PEN")], "unwanted", "C1", receipt=sale.number)
    # The card gets its 1.47 back; the 0.02 is cash that rounds to nothing again.
    assert refund_tenders(back) == [("card", D("-1.47")), ("cash", D("0"))]
    assert (back.total, back.rounding, back.change) == (D("-1.49"), D("0.02"), 0)
    assert verify(shop) == []
