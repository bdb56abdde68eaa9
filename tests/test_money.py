from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.ledger.money import (
    LineInput,
    MoneyError,
    TaxPolicy,
    Tender,
    price_cart,
    price_line,
    round_cash,
    settle,
    to_decimal,
)
from tests.conftest import D

RATES = {"A": D("0.19"), "B": D("0.07"), "Z": D("0")}
INCL = TaxPolicy(RATES, prices_include_tax=True, cash_step=D("0.05"))
EXCL = TaxPolicy(RATES, prices_include_tax=False, cash_step=D("0.05"))


def test_tax_inclusive_line_rounds_per_line():
    line = price_line(LineInput("X", D("3"), D("1.49"), "A"), INCL)
    assert line.total == D("4.47")
    assert line.tax == D("0.71")  # 4.47 * 0.19 / 1.19 = 0.7137...
    assert line.net == D("3.76")


def test_tax_exclusive_line():
    line = price_line(LineInput("X", D("3"), D("1.49"), "A", discount=D("0.47")), EXCL)
    assert (line.gross, line.discount, line.net) == (D("4.47"), D("0.47"), D("4.00"))
    assert line.tax == D("0.76") and line.total == D("4.76")


def test_weighed_and_price_embedded_lines():
    weighed = price_line(LineInput("B", D("0.532"), D("1.99"), "B"), INCL)
    assert weighed.total == D("1.06")  # 1.05868 -> 1.06
    embedded = price_line(LineInput("C", D("1"), D("18.90"), "B", amount=D("4.37")), INCL)
    assert embedded.total == D("4.37")


def test_half_rounds_away_from_zero_both_ways():
    up = price_line(LineInput("X", D("1"), D("0.125"), "Z"), INCL)
    down = price_line(LineInput("X", D("-1"), D("0.125"), "Z"), INCL)
    assert up.total == D("0.13") and down.total == D("-0.13")


def test_cart_tax_summary_by_rate():
    cart = price_cart(
        [
            LineInput("P", D("2"), D("1.49"), "A"),
            LineInput("W", D("6"), D("0.79"), "B"),
            LineInput("C", D("1"), D("19.99"), "A"),
        ],
        INCL,
    )
    assert cart.total == D("27.71")
    assert [t.code for t in cart.taxes] == ["A", "B"]
    assert sum(t.tax for t in cart.taxes) == cart.tax
    assert cart.net + cart.tax == cart.total


def test_cash_rounding_and_change():
    result = settle(D("47.13"), [Tender("card", D("20.00")), Tender("cash", D("50.00"))], INCL)
    assert result.rounding == D("0.02")
    assert result.change == D("22.85")
    assert result.tendered - result.change == result.total + result.rounding


def test_card_only_is_exact_and_never_rounded():
    result = settle(D("47.13"), [Tender("card", D("47.13"), "AUTH1")], INCL)
    assert (result.rounding, result.change) == (D("0"), D("0"))
    with pytest.raises(MoneyError, match="exceeds"):
        settle(D("10.00"), [Tender("card", D("10.01"))], INCL)
    with pytest.raises(MoneyError, match="unpaid"):
        settle(D("10.00"), [Tender("card", D("9.99"))], INCL)


@pytest.mark.parametrize(
    ("tenders", "message"),
    [
        ([Tender("cash", D("5.00"))], "does not cover"),
        ([Tender("bitcoin", D("20"))], "unknown tender"),
        ([Tender("cash", D("-20"))], "wrong sign"),
        ([Tender("cash", D("20.001"))], "finer than the currency"),
        ([], "nothing tendered"),
    ],
)
def test_bad_tenders_are_refused(tenders, message):
    with pytest.raises(MoneyError, match=message):
        settle(D("10.00"), tenders, INCL)


def test_refund_settles_with_negative_tenders():
    result = settle(D("-7.48"), [Tender("cash", D("-7.50"))], INCL)
    assert result.rounding == D("-0.02")
    assert result.tendered - result.change == result.total + result.rounding


def test_to_decimal_refuses_floats_and_garbage():
    assert to_decimal("1.10") == D("1.10")
    for bad in (1.1, "abc", "NaN", None, True):
        with pytest.raises(MoneyError):
            to_decimal(bad)


def test_discount_larger_than_line_is_refused():
    with pytest.raises(MoneyError, match="exceeds"):
        price_line(LineInput("X", D("1"), D("1.00"), "A", discount=D("1.50")), INCL)


amounts = st.decimals(min_value=0, max_value=2000, places=2, allow_nan=False, allow_infinity=False)
quantities = st.one_of(
    st.integers(min_value=1, max_value=50).map(Decimal),
    st.decimals(min_value=D("0.001"), max_value=D("20"), places=3),
)
line_inputs = st.builds(
    lambda qty, price, code, disc_pct: LineInput(
        "S",
        qty,
        price,
        code,
        discount=(qty * price * disc_pct / 100).quantize(D("0.01"), ROUND_DOWN),
    ),
    quantities,
    amounts,
    st.sampled_from(sorted(RATES)),
    st.integers(min_value=0, max_value=50),
)


@given(st.lists(line_inputs, min_size=1, max_size=30), st.booleans())
def test_totals_always_reconcile(lines, inclusive):
    policy = INCL if inclusive else EXCL
    cart = price_cart(lines, policy)
    assert cart.net + cart.tax == cart.total
    assert sum(li.total for li in cart.lines) == cart.total
    for line in cart.lines:
        assert line.net + line.tax == line.total
        assert line.total == line.total.quantize(D("0.01"))
    assert sum(t.net for t in cart.taxes) == cart.net


@given(
    amounts,
    amounts.filter(lambda a: a > 0),
    st.sampled_from([D("0.01"), D("0.05"), D("0.10"), D("0.50")]),
)
def test_settlement_always_reconciles(total, card_part, step):
    policy = TaxPolicy(RATES, cash_step=step)
    card = min(card_part, total)
    cash_needed = cash_oracle(total - card, step)
    if cash_needed <= 0:
        card = total  # what is left is less than a cash step: the card pays it exactly
    tenders = [Tender("card", card)] if card else []
    if cash_needed > 0:
        tenders.append(Tender("cash", cash_needed + D("5.00")))
    if not tenders:
        return
    result = settle(total, tenders, policy)
    assert result.tendered - result.change == result.total + result.rounding
    if cash_needed > 0:
        assert result.rounding == cash_needed - (total - card)
        assert result.change == D("5.00")
    else:
        assert (result.rounding, result.change) == (0, 0)


def cash_oracle(amount: Decimal, step: Decimal) -> Decimal:
    """Round a positive amount to the nearest cash step, half up, in whole cents and
    integer arithmetic: another way than round_cash's Decimal quantize."""
    cents, step_cents = int(amount * 100), int(step * 100)
    steps, rest = divmod(cents, step_cents)
    if 2 * rest >= step_cents:
        steps += 1
    return Decimal(steps * step_cents) / 100


@pytest.mark.parametrize(
    ("amount", "step", "expected"),
    [("1.25", "0.10", "1.30"), ("1.24", "0.10", "1.20"), ("0.02", "0.05", "0.00"),
     ("0.03", "0.05", "0.05"), ("2.25", "0.50", "2.50"), ("7.48", "0.05", "7.50")],
)  # fmt: skip
def test_the_cash_oracle_itself(amount, step, expected):
    assert cash_oracle(D(amount), D(step)) == D(expected)


@given(
    st.decimals(min_value=0, max_value=100000, places=2),
    st.sampled_from(["0.01", "0.05", "0.10", "0.20", "0.25", "0.50", "1.00"]),
)
def test_round_cash_agrees_with_integer_rounding(amount, step):
    assert round_cash(amount, D(step), D("0.01")) == cash_oracle(amount, D(step))
    assert round_cash(-amount, D(step), D("0.01")) == -cash_oracle(amount, D(step))


# ---------------------------------------------------------------- exact edges (mutation killers)


def test_no_tenders_against_nothing_settles_to_zeros():
    result = settle(D("0"), [], INCL)
    assert (result.total, result.rounding, result.tendered, result.change) == (0, 0, 0, 0)
    assert all(isinstance(v, Decimal) for v in (result.total, result.rounding, result.change))
    assert result.tendered == D("0") and isinstance(result.tendered, Decimal)


def test_cash_against_a_zero_total_is_all_change():
    # An exchange for the same amount: nothing due, 5.00 handed over comes back.
    result = settle(D("0.00"), [Tender("cash", D("5.00"))], INCL)
    assert (result.rounding, result.change, result.tendered) == (0, D("5.00"), D("5.00"))


def test_two_cash_tenders_add_up():
    result = settle(D("8.00"), [Tender("cash", D("5.00")), Tender("cash", D("5.00"))], INCL)
    assert (result.change, result.tendered) == (D("2.00"), D("10.00"))


def test_a_zero_tender_is_refused_unless_the_rest_rounds_to_nothing():
    with pytest.raises(MoneyError, match=r"^card tender 0.00 has the wrong sign$"):
        settle(D("1.00"), [Tender("card", D("0.00"))], INCL)
    with pytest.raises(MoneyError, match=r"^cash 0.00 does not cover 1.00$"):
        settle(D("1.00"), [Tender("cash", D("0.00"))], INCL)
    # 1.49: a card pays 1.47; the 0.02 left in cash rounds to 0.00 at a 0.05 step.
    result = settle(D("1.49"), [Tender("card", D("1.47")), Tender("cash", D("0"))], INCL)
    assert (result.rounding, result.change, result.tendered) == (D("-0.02"), 0, D("1.47"))
    refund = settle(D("-1.49"), [Tender("card", D("-1.47")), Tender("cash", D("0"))], INCL)
    assert (refund.rounding, refund.change) == (D("0.02"), 0)
    with pytest.raises(MoneyError, match=r"^tenders leave 0.02 unpaid$"):
        settle(D("1.49"), [Tender("card", D("1.47"))], INCL)  # a card alone is exact


def test_refusal_messages_name_the_amounts():
    with pytest.raises(MoneyError, match=r"^cash 5.00 does not cover 10.00$"):
        settle(D("10.00"), [Tender("cash", D("5.00"))], INCL)
    with pytest.raises(MoneyError, match=r"^cash -5.00 does not cover -10.00$"):
        settle(D("-10.00"), [Tender("cash", D("-5.00"))], INCL)
    with pytest.raises(MoneyError, match=r"^tenders leave 0.01 unpaid$"):
        settle(D("10.00"), [Tender("card", D("9.99"))], INCL)
    with pytest.raises(MoneyError, match=r"^tenders leave -0.01 unpaid$"):
        settle(D("-10.00"), [Tender("card", D("-9.99"))], INCL)
    with pytest.raises(MoneyError, match=r"^card tender 10.01 exceeds the 10.00 left to pay$"):
        settle(D("10.00"), [Tender("card", D("10.01"))], INCL)
    with pytest.raises(MoneyError, match=r"^cash tender 'lots' is not a number$"):
        settle(D("10.00"), [Tender("cash", "lots")], INCL)
    with pytest.raises(MoneyError, match=r"^nothing tendered against 10.00$"):
        settle(D("10.00"), [], INCL)
    with pytest.raises(MoneyError, match=r"^unknown tender kind 'bitcoin'$"):
        settle(D("10.00"), [Tender("bitcoin", D("10.00"))], INCL)


def test_to_decimal_messages():
    with pytest.raises(MoneyError, match=r"^amount 'abc' is not a number$"):
        to_decimal("abc")
    with pytest.raises(MoneyError, match=r"^price 'abc' is not a number$"):
        to_decimal("abc", "price")
    with pytest.raises(MoneyError, match=r"^amount must be a decimal string, not float$"):
        to_decimal(1.5)
    with pytest.raises(MoneyError, match=r"^amount 'NaN' is not a finite number$"):
        to_decimal("NaN")
    with pytest.raises(MoneyError, match=r"^amount 'Infinity' is not a finite number$"):
        to_decimal("Infinity")
    assert to_decimal(" 2.50 ") == D("2.50") and to_decimal(7) == D("7")


def test_unknown_tax_category_is_named():
    with pytest.raises(MoneyError, match=r"^unknown tax category 'Q'$"):
        price_line(LineInput("X", D("1"), D("1.00"), "Q"), INCL)


def test_a_discount_of_the_whole_line_is_allowed():
    free = price_line(LineInput("X", D("2"), D("0.50"), "A", discount=D("1.00")), INCL)
    assert (free.gross, free.discount, free.total, free.tax, free.net) == (
        D("1.00"),
        D("1.00"),
        0,
        0,
        0,
    )


def test_an_empty_cart_sums_to_decimal_zeros():
    cart = price_cart([], INCL)
    for value in (cart.net, cart.tax, cart.total, cart.discount):
        assert isinstance(value, Decimal) and value == 0
    assert cart.taxes == () and cart.lines == ()


def test_cart_summary_carries_rates_and_discounts():
    cart = price_cart(
        [
            LineInput("P", D("2"), D("1.49"), "A", discount=D("0.50")),  # 2.98 - 0.50 = 2.48
            LineInput("W", D("1"), D("0.79"), "B", discount=D("0.09")),  # 0.70
        ],
        INCL,
    )
    assert cart.discount == D("0.59") and cart.total == D("3.18")
    # A: 2.48 x 19 / 119 = 0.3959 -> 0.40, net 2.08; B: 0.70 x 7 / 107 = 0.0457 -> 0.05, net 0.65
    assert [(t.code, t.rate, t.net, t.tax) for t in cart.taxes] == [
        ("A", D("0.19"), D("2.08"), D("0.40")),
        ("B", D("0.07"), D("0.65"), D("0.05")),
    ]
    assert (cart.net, cart.tax) == (D("2.73"), D("0.45"))


def test_policy_from_config():
    from kiosk.config import parse

    money = parse(
        '[money]\ncurrency = "JPY"\nprices_include_tax = false\ncash_rounding = "10"\n'
        'tax_rates = { A = "10", B = "8" }\n'
    ).money
    policy = TaxPolicy.from_config(money)
    assert policy.prices_include_tax is False
    assert policy.unit == D("1") and policy.cash_step == D("10")
    assert policy.rates == {"A": D("0.10"), "B": D("0.08")}
    # 3 x 333 = 999, 10 % on top: 99.9 -> 100 (the yen has no minor unit)
    line = price_line(LineInput("X", D("3"), D("333"), "A"), policy)
    assert (line.net, line.tax, line.total) == (D("999"), D("100"), D("1099"))
    assert settle(line.total, [Tender("cash", D("1100"))], policy).change == 0  # 1099 -> 1100
