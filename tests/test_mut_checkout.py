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


# ---------------------------------------------------------------- the selling path


@pytest.fixture
def till(shop):
    from kiosk.checkout.replay import ReplayClock
    from kiosk.checkout.session import Checkout
    from kiosk.drivers.base import MemoryDrawer, MemoryPrinter
    from kiosk.ledger.models import utc_now

    log: list[dict] = []
    co = Checkout(shop, MemoryPrinter(), MemoryDrawer(), ReplayClock(utc_now), log=log.append)
    events: list[tuple] = []
    co.subscribe(lambda e: events.append((e.kind, e.state.value, dict(e.detail))))
    return co, log, events


def said(outcome) -> tuple:
    return outcome.ok, outcome.message


def test_a_cash_sale_step_by_step_written_out(till):
    co, log, events = till
    assert said(co.pay()) == (False, "Scan something first")
    assert said(co.scan("4006381333931")) == (True, "Pen x 1: total 1.49 EUR")
    assert co.state.value == "scanning"
    assert said(co.scan("4006381333931")) == (True, "Pen x 2: total 2.98 EUR")
    assert said(co.quantity("3")) == (True, "Pen x 3: total 4.47 EUR")
    assert said(co.quantity("0")) == (False, "Quantity must be between 1 and 9999")
    assert said(co.quantity("10000")) == (False, "Quantity '10000' must be from 0 to 9999")
    assert said(co.quantity("1.5")) == (False, "Pen is sold by the piece")
    assert said(co.scan("4001234000039")) == (True, "Cable x 1: total 14.46 EUR")
    assert said(co.set_quantity(2, "2")) == (True, "Cable x 2: total 24.45 EUR")
    assert said(co.set_quantity(3, "1"))[0] is False
    assert co.amount_due == D("24.45") and co.totals.total == D("24.45")
    assert said(co.pay()) == (True, "To pay: 24.45 EUR")
    assert said(co.pay()) == (True, "Still to pay: 24.45 EUR")
    assert co.snapshot()["due"] == "24.45"
    assert said(co.scan("4006381333931")) == (False, "Finish the payment first")
    assert said(co.tender_cash("10.00")) == (True, "Still to pay: 14.45 EUR")
    assert co.amount_due == D("14.45") and co.snapshot()["due"] == "14.45"
    assert said(co.tender_cash("abc"))[0] is False
    assert said(co.tender_cash("0")) == (False, "Amount must be above zero")
    done = co.tender_cash("20.00")
    assert done.ok and done.message.startswith("Paid, thank you! Change: 5.55 EUR.")
    assert co.state.value == "receipt" and co.last_posted.change == D("5.55")
    assert co.last_posted.total == D("24.45")
    assert [e for e in log if "pay" in e] == [
        {"pay": "start"}, {"pay": "start"}, {"pay": "start"}, {"pay": {"cash": "10.00"}},
        {"pay": {"cash": "abc"}},
        {"pay": {"cash": "0"}}, {"pay": {"cash": "20.00"}},
    ]  # fmt: skip
    assert {"scan": "4006381333931"} in log and {"qty": "3"} in log
    assert {"set_qty": {"line": 2, "qty": "2"}} in log
    kinds = [k for k, _, _ in events]
    assert (
        kinds.count("posted") == 1
        and ("payment", "paying", {"kind": "cash", "amount": "10.00"}) in events
    )
    assert ("cart", "scanning", {"line": 1, "total": "1.49"}) in events


def test_removing_and_cancelling_written_out(shop):
    from kiosk.checkout.replay import ReplayClock
    from kiosk.checkout.session import Checkout
    from kiosk.drivers.base import MemoryDrawer, MemoryPrinter
    from kiosk.ledger.models import Audit, utc_now
    from tests.test_checkout import with_role

    log: list[dict] = []
    co = Checkout(with_role(shop, "staffed"), MemoryPrinter(), MemoryDrawer(),
                  ReplayClock(utc_now), log=log.append)  # fmt: skip
    assert co.staff_login("5678").ok
    co.scan("4006381333931")
    co.scan("4001234000039")
    assert said(co.remove_line(3)) == (False, "there is no line 3")
    assert said(co.remove_line(1)) == (True, "Removed Pen: total 9.99 EUR")
    removed = Audit.select().where(Audit.action == "line_removed")
    assert [(a.staff, a.subject, a.field, a.old, a.new) for a in removed] == [
        ("C1", "PEN", "qty", "1", "0")
    ]
    assert said(co.set_quantity(1, "0")) == (True, "Removed Cable: total 0.00 EUR")
    co.scan("4001234000039")
    co.pay()
    assert said(co.remove_line(1)) == (False, "Lines can only be removed while scanning")
    assert said(co.cancel_payment())[0] is True and co.state.value == "scanning"
    assert said(co.cancel_payment()) == (False, "No payment in progress")
    out = co.cancel()
    assert said(out) == (True, "Sale cancelled") and not co.cart
    assert Audit.get(Audit.action == "abandoned_cart").staff == "C1"
    assert {"remove": 1} in log and {"pay": "cancel"} in log


def test_card_and_cash_together(till):
    co, _, _ = till
    co.scan("4001234000022")  # charger 19.99
    assert said(co.tender_card("5.00")) == (False, "Enter the terminal's approval reference")
    assert said(co.tender_card("25.00", "A1")) == (
        False,
        "A card cannot pay more than the 19.99 EUR due",
    )
    assert said(co.tender_card("5.00", "A1")) == (True, "Still to pay: 14.99 EUR")
    assert said(co.tender_cash("5.00")) == (
        True,
        "Still to pay: 10.00 EUR",
    )  # 9.99 -> 10.00 in cash
    assert co.tender_cash("10.00").ok and co.last_posted.rounding == D("0.01")
    assert co.last_posted.change == 0


def test_cancelling_a_sale_and_a_payment_word_for_word(till):
    """cancel, _abandon and cancel_payment: every refusal, the audit's figures and JSON,
    the events, and where the session goes (a self-checkout back to attract)."""
    import json

    from kiosk.ledger.models import Audit

    co, log, events = till
    assert co.role == "self-checkout"
    assert said(co.cancel()) == (False, "Nothing to cancel")
    co.scan("4006381333931")
    co.scan("4001234000039")
    co.quantity("2")
    assert said(co.pay()) == (True, "To pay: 21.47 EUR")
    assert said(co.tender_cash("5.00")) == (True, "Still to pay: 16.45 EUR")  # cash due, to 0.05
    assert said(co.cancel()) == (False, "Cancel the payment first")
    assert said(co.tender_card("3.00", "AUTH-7")) == (True, "Still to pay: 13.45 EUR")
    events.clear()
    out = co.cancel_payment()
    assert said(out) == (
        True,
        "Payment cancelled: reverse card payment(s) AUTH-7 on the terminal; "
        "give back 5.00 EUR cash",
    )
    assert co.state.value == "scanning" and co.payment.tenders == []
    alert = "Payment cancelled: reverse card payment(s) AUTH-7"
    assert ("alert", "scanning", {"text": alert}) in events and co.alerts[-1] == alert
    assert co.amount_due == D("21.47")
    events.clear()
    assert said(co.cancel()) == (True, "Sale cancelled")
    assert co.state.value == "attract" and not co.cart and co.payment.tenders == []
    assert ("cart", "attract", {"total": "0"}) in events or (
        "cart",
        "scanning",
        {"total": "0"},
    ) in events
    (row,) = Audit.select().where(Audit.action == "abandoned_cart")
    assert (row.subject, row.field, row.old, row.new) == (None, None, None, "21.47")
    assert json.loads(row.detail) == {
        "why": "cancelled",
        "lines": [{"sku": "PEN", "qty": "1"}, {"sku": "CABLE", "qty": "2"}],
    }
    assert {"cancel": True} in log and {"pay": "cancel"} in log
    assert co.pending is None and co.next_qty is None


def test_removing_the_last_line_at_a_self_checkout_asks_staff(till):
    co, log, events = till
    co.scan("4006381333931")
    assert said(co.remove_line(1)) == (
        False,
        "Removing an item needs staff: someone is on the way",
    )
    assert co.state.value == "help" and len(co.cart.lines) == 1
    assert co.staff_login("1234").ok  # the supervisor's login approves it
    assert co.cart.lines == [] and co.state.value in ("scanning", "attract")
    removed = [d for k, _, d in events if k == "cart" and "removed" in d]
    assert removed == [{"removed": 1, "total": "0"}]  # an empty cart totals Decimal 0


def _checkout(shop, role: str, **checkout):
    from kiosk.checkout.replay import ReplayClock
    from kiosk.checkout.session import Checkout
    from kiosk.drivers.base import MemoryDrawer, MemoryPrinter
    from kiosk.ledger.models import utc_now
    from tests.test_checkout import with_role

    ledger = with_role(shop, role, **checkout)
    return Checkout(ledger, MemoryPrinter(), MemoryDrawer(), ReplayClock(utc_now))


def test_who_may_take_payment_and_the_age_check_word_for_word(shop, till):
    cart = _checkout(shop, "mobile-cart")
    assert cart.staff_login("5678").ok
    assert said(cart.scan("4006381333931")) == (
        False,
        "This cart does not sell: use item lookup, counts or receiving",
    )
    tendering = _checkout(shop, "mobile-cart", cart_tendering=True)
    assert tendering.staff_login("5678").ok
    assert said(tendering.scan("4006381333931")) == (True, "Pen x 1: total 1.49 EUR")
    assert said(tendering.pay()) == (True, "To pay: 1.49 EUR")
    co, _, _ = till  # a self-checkout: an age check calls staff
    assert said(co.scan("4001234000084")) == (
        True,
        "Lager 6-pack x 1: total 6.49 EUR (age 18+: staff will check)",
    )
    assert said(co.pay()) == (False, "An age check needs staff: someone is on the way")
    assert co.state.value == "help"
    staffed = _checkout(shop, "staffed")
    staffed.staff_login("5678")
    staffed.scan("4001234000084")
    assert said(staffed.pay()) == (False, "Check the customer's age, then approve")
    assert staffed.state.value == "scanning"


def test_typed_tenders_word_for_word(shop):
    co = _checkout(shop, "staffed")
    co.staff_login("5678")
    co.scan("4006381333931")
    assert said(co.pay()) == (True, "To pay: 1.49 EUR")
    too_long = (False, "An approval reference is at most 48 plain characters")
    assert said(co.tender_card("0.50", "A" * 49)) == too_long
    assert said(co.tender_card("0.50", "A\x07B")) == too_long  # a control character
    assert said(co.tender_cash("1.234")) == (False, "Amount '1.234' must have at most 2 decimal(s)")
    assert said(co.tender_cash("abc")) == (
        False,
        "Amount 'abc' is not a number (write e.g. 12 or 1.50)",
    )
    card = co.tender_card("0.50", "A" * 48)  # exactly the limit
    assert said(card) == (True, "Still to pay: 0.99 EUR") and card.data == {"due": D("0.99")}
    cash = co.tender_cash("0.50")  # below one unit is still money: 0.49 left, 0.50 in cash
    assert said(cash) == (True, "Still to pay: 0.50 EUR") and cash.data == {"due": D("0.50")}


def test_quantities_and_the_next_scan_word_for_word(shop):
    from kiosk.ledger.models import TxnLine

    co = _checkout(shop, "staffed")
    co.staff_login("5678")
    events: list[tuple] = []
    co.subscribe(lambda e: events.append((e.kind, dict(e.detail))))
    assert said(co.quantity("1.5")) == (False, "The next scan counts whole pieces")
    assert said(co.quantity("0")) == (False, "Quantity must be between 1 and 9999")
    assert said(co.quantity("3")) == (True, "Next scan counts 3 times") and co.next_qty == 3
    pen = co.scan("4006381333931")  # 3 pens: the multiplier is used once
    assert said(pen) == (True, "Pen x 3: total 4.47 EUR")
    assert pen.data == {"line": 1, "total": D("4.47")} and co.next_qty is None
    assert ("cart", {"line": 1, "total": "4.47"}) in events
    assert said(co.quantity("2")) == (True, "Pen x 2: total 2.98 EUR")  # the last line
    banana = co.scan("2800123005320")
    assert said(banana) == (True, "Bananas x 0.532 kg: total 4.04 EUR")
    cheese = co.scan("2100456004374")  # a priced label: 4.37
    assert said(cheese) == (True, "Cheese x 1: total 8.41 EUR")
    assert cheese.data == {"line": 3, "total": D("8.41")}
    assert said(co.set_quantity(3, "2")) == (
        False,
        "A priced label cannot change quantity; scan it again",
    )
    assert said(co.quantity("5")) == (False, "A priced label cannot change quantity; scan it again")
    events.clear()
    assert said(co.set_quantity(2, "2")) == (True, "Bananas x 2: total 11.33 EUR")  # 2 kg
    assert events[0] == ("cart", {"line": 2, "total": "11.33"})
    assert co.pay().ok and co.tender_cash("20.00").ok
    lines = TxnLine.select().order_by(TxnLine.id)
    assert [(li.sku, li.barcode) for li in lines] == [  # as GTIN-14; a scale label by item
        ("PEN", "04006381333931"),
        ("BANANA", "2800123"),
        ("CHEESE", "2100456"),
    ]
    weighed = _checkout(shop, "staffed")
    weighed.staff_login("5678")
    assert weighed.quantity("3").ok  # a multiplier, then a weighed item: it does not apply
    assert said(weighed.scan("2800123005320")) == (True, "Bananas x 0.532 kg: total 1.06 EUR")
    assert weighed.next_qty is None and weighed.cart.lines[0].qty == D("0.532")


def test_lowering_a_quantity_at_a_self_checkout_needs_staff(till):
    co, _, _ = till
    co.scan("4006381333931")
    co.scan("4006381333931")
    assert said(co.set_quantity(1, "1")) == (
        False,
        "Lowering a quantity needs staff: someone is on the way",
    )
    assert co.state.value == "help" and co.cart.lines[0].qty == 2
    assert co.staff_login("1234").ok  # the approval carries it out
    assert co.cart.lines[0].qty == 1
    assert said(co.set_quantity(1, "3")) == (True, "Pen x 3: total 4.47 EUR")  # raising: no staff


def test_a_full_disk_at_the_commit_word_for_word(shop):
    """The commit's refusal, the staff alert, and the sale kept: SQLite's own SQLITE_FULL
    (the file may not grow past its size)."""
    co = _checkout(shop, "staffed")
    co.staff_login("5678")
    events: list[tuple] = []
    co.subscribe(lambda e: events.append((e.kind, dict(e.detail))))
    pages = shop.db.execute_sql("PRAGMA page_count").fetchone()[0]
    shop.db.execute_sql(f"PRAGMA max_page_count = {pages}")
    refused = None
    for _ in range(500):  # sell until the last free page is used up
        assert co.add_item("PEN", "3").ok
        co.pay()
        outcome = co.tender_cash("50.00")
        if not outcome.ok:
            refused = outcome
            break
        co.choose_receipt(False)
    assert refused is not None
    assert said(refused) == (
        False,
        "Could not record the sale: this kiosk's storage is full. Call staff.",
    )
    assert co.storage_full and co.state.value == "paying"
    assert [d["text"] for k, d in events if k == "alert"][-1].startswith("Storage full")
    shop.db.execute_sql("PRAGMA max_page_count = 1073741823")
    paid = co.tender_cash("50.00")
    assert paid.ok and paid.message.startswith("Paid, thank you! Change: 45.55 EUR. Receipt ")
    assert paid.data == {"receipt": co.last_posted.number} and co.storage_full is None
    assert ("posted", {"receipt": co.last_posted.number, "total": "4.47"}) in events  # cash: 4.45


def test_removing_the_only_line_where_the_session_goes(shop, till):
    staffed = _checkout(shop, "staffed")
    staffed.staff_login("5678")
    events: list[tuple] = []
    staffed.subscribe(lambda e: events.append((e.kind, dict(e.detail))))
    staffed.scan("4006381333931")
    assert said(staffed.remove_line(1)) == (True, "Removed Pen: total 0.00 EUR")
    assert ("cart", {"removed": 1, "total": "0"}) in events
    assert staffed.state.value == "scanning"  # a till stays open for the next customer
    co, _, _ = till  # a self-checkout with staff at it: back to attract, no approval asked
    co.scan("4006381333931")
    assert co.staff_login("1234").ok
    assert said(co.remove_line(1)) == (True, "Removed Pen: total 0.00 EUR")
    assert co.state.value == "attract" and not co.cart


def test_cancelling_at_a_till_and_the_bounds_of_a_scan(shop):
    co = _checkout(shop, "staffed")
    co.staff_login("5678")
    co.scan("4006381333931")
    assert said(co.pay()) == (True, "To pay: 1.49 EUR")
    assert said(co.cancel_payment()) == (True, "Payment cancelled")  # nothing to give back
    assert co.pay().ok
    assert said(co.cancel()) == (True, "Sale cancelled")  # paying, but nothing tendered yet
    assert co.state.value == "scanning" and not co.cart  # a till stays open
    assert said(co.quantity("2")) == (True, "Next scan counts 2 times")
    water = co.scan("14001234000012")  # a case of 6, twice
    assert said(water) == (True, "Water 1.5 l x 12: total 9.48 EUR")
    assert co.set_quantity(1, "9999").ok
    assert said(co.scan("4001234000015")) == (  # one more bottle: past the bound
        False,
        "Quantity '10000' must be from 1 to 9999",
    )
    assert co.cart.lines[0].qty == 9999
