"""The checkout core with the expected values written down: the cart's lines, merging,
pricing and approvals (kiosk/checkout/cart.py), and the selling path of a session
(scan, quantities, paying, tenders, the commit). Written against the survivors of
`./dev.sh mutate checkout`."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from kiosk.checkout.cart import Cart, CartLine
from kiosk.ledger.money import TaxPolicy
from kiosk.ledger.sales import SaleLine
from tests.conftest import D

POLICY = TaxPolicy({"A": D("0.19"), "B": D("0.07")}, cash_step=D("0.05"))


def item(sku="PEN", price="1.49", unit="each", min_age=0, name="Pen", tax="A"):
    return SimpleNamespace(sku=sku, name=name, unit=unit, price=D(price), tax_code=tax,
                           min_age=min_age)  # fmt: skip


def test_a_line_from_an_item_written_out():
    line = CartLine.from_item(item(min_age=18), D("2"), barcode="4006381333931", lot="L1")
    assert line == CartLine(
        sku="PEN", name="Pen", unit="each", qty=D("2"), price=D("1.49"), list_price=D("1.49"),
        tax_code="A", barcode="4006381333931", amount=None, discount=Decimal(0), lot="L1",
        min_age=18, approved=False,
    )  # fmt: skip
    plain = CartLine.from_item(item(), D("1"), amount=D("4.37"))
    assert (plain.amount, plain.approved, plain.min_age, plain.barcode, plain.lot) == (
        D("4.37"), True, 0, None, None
    )  # fmt: skip


def test_a_line_becomes_a_sale_line():
    line = CartLine.from_item(item(), D("3"), barcode="B", lot="L")
    assert line.to_sale_line() == SaleLine("PEN", D("3"), None, Decimal(0), None, "B", "L")
    cheaper = CartLine.from_item(item(), D("1"))
    from dataclasses import replace

    cheaper = replace(cheaper, price=D("1.00"), discount=D("0.10"))
    assert cheaper.to_sale_line() == SaleLine("PEN", D("1"), D("1.00"), D("0.10"), None, None, None)
    label = CartLine.from_item(item("CHEESE", "18.90"), D("1"), amount=D("4.37"))
    assert label.to_sale_line().amount == D("4.37")


def test_repeat_scans_merge_only_plain_pieces():
    cart = Cart(POLICY)
    assert not cart
    assert cart.add(CartLine.from_item(item(), D("1"))) == 1
    assert cart
    assert cart.add(CartLine.from_item(item(), D("2"))) == 1
    assert cart.lines[0].qty == D("3")
    assert cart.add(CartLine.from_item(item("CABLE", "9.99"), D("1"))) == 2
    assert cart.add(CartLine.from_item(item(), D("1"), lot="L2")) == 3  # another lot
    assert cart.add(CartLine.from_item(item("BANANA", "1.99", "kg"), D("0.5"))) == 4
    assert cart.add(CartLine.from_item(item("BANANA", "1.99", "kg"), D("0.5"))) == 5  # weighed
    assert cart.add(CartLine.from_item(item("CHEESE", "18.90"), D("1"), amount=D("4.37"))) == 6
    assert cart.add(CartLine.from_item(item("CHEESE", "18.90"), D("1"), amount=D("4.37"))) == 7
    from dataclasses import replace

    cart.update(2, price=D("9.00"))
    assert cart.add(CartLine.from_item(item("CABLE", "9.99"), D("1"))) == 8  # another price
    assert cart.add(CartLine.from_item(item("CABLE", "9.99"), D("1"))) == 8
    assert [li.qty for li in cart.lines] == [3, 1, 1, D("0.5"), D("0.5"), 1, 1, 2]
    assert replace(cart.lines[0]).merges_with(CartLine.from_item(item(), D("1")))


def test_lines_by_number():
    cart = Cart(POLICY)
    cart.add(CartLine.from_item(item(), D("1")))
    cart.add(CartLine.from_item(item("CABLE", "9.99"), D("1")))
    assert cart.line(1).sku == "PEN" and cart.line(2).sku == "CABLE"
    for bad in (0, 3, -1):
        with pytest.raises(IndexError) as info:
            cart.line(bad)
        assert str(info.value) == f"there is no line {bad}"
    assert cart.update(2, qty=D("4")).qty == D("4") and cart.lines[1].qty == D("4")
    assert cart.remove(1).sku == "PEN"
    assert [li.sku for li in cart.lines] == ["CABLE"]
    cart.clear()
    assert cart.lines == [] and not cart


def test_the_cart_prices_with_the_ledger_rules():
    cart = Cart(POLICY)
    cart.add(CartLine.from_item(item(), D("2")))  # 2.98, 19 % in: 0.48
    cart.add(CartLine.from_item(item("CHEESE", "18.90", tax="B"), D("1"), amount=D("4.37")))
    cart.update(1, discount=D("0.48"))  # 2.50: tax 0.40
    priced = cart.priced()
    # 2.50 + 4.37 = 6.87; tax 0.40 + 0.29 (4.37 x 7 / 107 = 0.2858)
    assert (priced.total, priced.tax, priced.discount) == (D("6.87"), D("0.69"), D("0.48"))
    assert [(li.sku, li.total) for li in priced.lines] == [
        ("PEN", D("2.50")),
        ("CHEESE", D("4.37")),
    ]


def test_lines_waiting_for_an_age_check():
    cart = Cart(POLICY)
    cart.add(CartLine.from_item(item(), D("1")))
    cart.add(CartLine.from_item(item("BEER", "6.49", min_age=18), D("1")))
    cart.add(CartLine.from_item(item("WINE", "9.99", min_age=16), D("1")))
    assert [li.sku for li in cart.waiting_for_approval] == ["BEER", "WINE"]
    cart.update(2, approved=True)
    assert [li.sku for li in cart.waiting_for_approval] == ["WINE"]
