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
    cash_needed = round_cash(total - card, step, D("0.01"))
    if cash_needed <= 0:
        card = total  # what is left is less than a cash step: the card pays it exactly
    tenders = [Tender("card", card)] if card else []
    if cash_needed > 0:
        tenders.append(Tender("cash", cash_needed + D("5.00")))
    if not tenders:
        return
    result = settle(total, tenders, policy)
    assert result.tendered - result.change == result.total + result.rounding
    assert abs(result.rounding) <= step / 2
    assert result.change >= 0
