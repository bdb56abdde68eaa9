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
    full = f"{shop.db.database}: the disk is full, nothing was written; free space and try again"
    assert co.storage_full == full and co.snapshot()["due"] == "0"  # the tenders cover it
    assert [d["text"] for k, d in events if k == "alert"][-1] == (
        f"Storage full, sales cannot be recorded; the open cart is kept. {full}"
    )
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


# ---------------------------------------------------------------- every outcome's words
# Written against the survivors of `./dev.sh mutate checkout` once the messages became
# gettext Messages: each refusal and answer below is compared word for word, with the
# values put into it, and a few also in German (the catalog in kiosk/locale/de).


def german(outcome) -> str:
    from kiosk import i18n

    return i18n.render(outcome.message, "de")


def test_a_line_waits_for_staff_from_an_age_of_one():
    assert CartLine.from_item(item(min_age=1), D("1")).approved is False
    assert CartLine.from_item(item(min_age=0), D("1")).approved is True


def test_the_cart_prices_once_until_a_line_changes():
    cart = Cart(POLICY)
    cart.add(CartLine.from_item(item(), D("2")))
    first = cart.priced()
    assert cart.priced() is first  # remembered
    cart.update(1, qty=D("3"))
    assert cart.priced() is not first and cart.priced().total == D("4.47")


def test_unreadable_and_unknown_barcodes_word_for_word(till):
    from kiosk.ledger.barcodes import with_check_digit

    co, _, _ = till
    bad = co.scan("4006381333932")  # the check digit is wrong
    assert said(bad) == (
        False,
        "Cannot read that barcode (bad check digit). Try again or call staff.",
    )
    unknown = co.scan(with_check_digit("400123400999"))  # valid, but no item has it
    assert said(unknown) == (
        False,
        "Unknown item (barcode 04001234009995). Look it up by name or call staff.",
    )
    assert german(unknown) == (
        "Unbekannter Artikel (Barcode 04001234009995). Bitte per Name suchen oder Personal rufen."
    )


def test_the_number_of_different_items_in_one_sale_is_bounded(shop, monkeypatch):
    from kiosk import numbers

    monkeypatch.setattr(numbers, "MAX_EVENT_LINES", 2)  # the bound, met with two items
    co = _checkout(shop, "staffed")
    co.staff_login("5678")
    assert co.scan("4006381333931").ok and co.scan("4001234000039").ok
    third = co.scan("4001234000022")
    assert said(third) == (False, "A sale holds at most 2 different items")
    assert german(third) == "Ein Verkauf umfasst höchstens 2 verschiedene Artikel"
    assert said(co.scan("4006381333931")) == (True, "Pen x 2: total 12.97 EUR")  # not new
    assert [li.sku for li in co.cart.lines] == ["PEN", "CABLE"]


def test_what_one_sale_may_total_word_for_word(shop):
    """A sale totals at most 10,000,000.00: a line's quantity, a scan and a priced label
    are refused once they would pass it, and allowed up to it."""
    co = _checkout(shop, "staffed")
    co.staff_login("1234")  # a supervisor may override prices
    too_much = (False, "A sale can total at most 10000000: pay for this part first")
    assert co.add_item("PEN").ok
    assert said(co.override_price(1, "1000000")) == (True, "Pen now 1,000,000.00 EUR each")
    assert said(co.set_quantity(1, "10")) == (True, "Pen x 10: total 10,000,000.00 EUR")
    refused = co.set_quantity(1, "11")
    assert said(refused) == too_much and co.cart.lines[0].qty == 10
    assert german(refused) == (
        "Ein Verkauf darf höchstens 10.000.000 betragen: bitte erst diesen Teil bezahlen"
    )
    assert said(co.set_quantity(1, "9")) == (True, "Pen x 9: total 9,000,000.00 EUR")
    assert said(co.set_quantity(1, "11")) == too_much  # 2,000,000.00 more
    assert said(co.override_price(1, "1111111.10")) == (True, "Pen now 1,111,111.10 EUR each")
    assert co.totals.total == D("9999999.90")
    assert said(co.scan("4006381333931")) == too_much  # 1.49 more: 0.10 is left
    assert co.override_price(1, "1111110.55").ok  # 9,999,994.95: 5.05 left
    assert said(co.scan("2100456004374")) == (True, "Cheese x 1: total 9,999,999.32 EUR")
    assert said(co.scan("2100456004374")) == too_much  # 4.37 more: 0.68 left
    assert said(co.scan("4006381333931")) == too_much
    assert len(co.cart.lines) == 2


def test_a_priced_label_does_not_count_into_the_pieces_of_its_item(shop):
    co = _checkout(shop, "staffed")
    co.staff_login("5678")
    assert co.add_item("CHEESE", "9999").ok  # the most pieces one line may hold
    assert said(co.scan("2100456004374")) == (True, "Cheese x 1: total 188,985.47 EUR")
    assert said(co.add_item("CHEESE")) == (False, "Quantity '10001' must be from 1 to 9999")


def test_quantities_at_their_bounds_word_for_word(shop, till):
    co = _checkout(shop, "staffed")
    co.staff_login("5678")
    assert said(co.quantity("1")) == (True, "Next scan counts 1 times")
    assert co.scan("4006381333931").ok
    assert said(co.quantity("9999")) == (True, "Pen x 9999: total 14,898.51 EUR")
    assert said(co.quantity("1")) == (True, "Pen x 1: total 1.49 EUR")
    assert said(co.set_quantity(9, "1")) == (False, "There is no line 9")
    assert said(co.set_quantity(1, "abc")) == (
        False,
        "Quantity 'abc' is not a number (write e.g. 12 or 1.50)",
    )
    assert co.scan("2800123005320").ok  # bananas by weight: half a kilo is a quantity
    # (a typed quantity is said without its unit, as test_quantities_... has it)
    assert said(co.set_quantity(2, "0.5")) == (True, "Bananas x 0.5: total 2.49 EUR")
    customer, _, _ = till  # a self-checkout: the same quantity again needs nobody
    customer.scan("4006381333931")
    assert said(customer.set_quantity(1, "1")) == (True, "Pen x 1: total 1.49 EUR")
    assert customer.state.value == "scanning" and customer.pending is None


def test_paying_with_nothing_scanned_at_a_till(shop):
    co = _checkout(shop, "staffed")
    co.staff_login("5678")
    assert co.state.value == "scanning" and not co.cart
    assert said(co.pay()) == (False, "Scan something first")
    assert co.state.value == "scanning"


def test_manual_card_tenders_and_what_the_log_keeps(shop):
    from kiosk.checkout.replay import ReplayClock
    from kiosk.checkout.session import Checkout
    from kiosk.drivers.base import MemoryDrawer, MemoryPrinter
    from kiosk.ledger.models import utc_now
    from tests.test_checkout import with_role

    log: list[dict] = []
    co = Checkout(with_role(shop, "staffed"), MemoryPrinter(), MemoryDrawer(),
                  ReplayClock(utc_now), log=log.append)  # fmt: skip
    co.staff_login("5678")
    co.scan("4001234000022")  # charger 19.99
    card_number = co.tender_card(None, "4111111111111111")
    assert said(card_number) == (
        False,
        "That looks like a card number: type the terminal's approval reference",
    )
    assert german(card_number).startswith("Das sieht wie eine Kartennummer aus")
    assert not any("4111111111111111" in str(entry) for entry in log)
    assert said(co.tender_card("5.00")) == (False, "Enter the terminal's approval reference")
    assert said(co.tender_card("5.00", "A1")) == (True, "Still to pay: 14.99 EUR")
    assert said(co.tender_card(None, "A2")) == (
        True,
        "Paid, thank you! Receipt " + co.last_posted.number,
    )
    assert [e["pay"] for e in log if isinstance(e.get("pay"), dict)] == [
        {"card": "5.00"},
        {"card": "5.00", "ref": "A1"},
        {"card": None, "ref": "A2"},
    ]


def test_cancelling_a_payment_says_what_to_give_back(shop):
    co = _checkout(shop, "staffed")
    co.staff_login("5678")
    co.scan("4001234000022")  # charger 19.99
    assert co.tender_card("5.00", "A1").ok and co.tender_card("4.00", "A2").ok
    two_cards = co.cancel_payment()
    assert said(two_cards) == (
        True,
        "Payment cancelled: reverse card payment(s) A1, A2 on the terminal",
    )
    assert german(two_cards) == (
        "Zahlung abgebrochen: Kartenzahlung(en) A1, A2 am Terminal stornieren"
    )
    assert co.alerts[-1] == "Payment cancelled: reverse card payment(s) A1, A2"
    assert co.state.value == "scanning" and co.payment.tenders == []
    alerts = len(co.alerts)
    assert co.tender_cash("5.00").ok
    cash = co.cancel_payment()
    assert said(cash) == (True, "Payment cancelled: give back 5.00 EUR cash")
    assert german(cash) == "Zahlung abgebrochen: 5,00\xa0€ bar zurückgeben"
    assert len(co.alerts) == alerts  # no card to reverse: staff are not alerted


def test_an_exchange_pays_its_difference_and_cancels_back_to_the_return(shop):
    from kiosk.ledger import stock

    stock.receive(shop, [stock.ReceiveLine("CABLE", 5), stock.ReceiveLine("CHARGER", 5)], "S1")
    co = _checkout(shop, "staffed")
    co.staff_login("5678")
    co.scan("4001234000039")  # cable 9.99
    co.tender_cash("10.00")
    co.choose_receipt(False)
    sold = co.last_posted.number
    assert co.start_return(sold).ok
    assert co.return_item("CABLE").ok
    assert co.exchange_item("4001234000022").ok  # a charger instead: 10.00 more
    assert said(co.finish_return("wrong_item")) == (True, "Exchange: customer pays 10.00 EUR")
    assert co.state.value == "paying" and co.amount_due == D("10.00") and not co.cart
    assert co.snapshot()["due"] == "10.00"
    assert said(co.tender_cash("4.00")) == (True, "Still to pay: 6.00 EUR")
    assert said(co.cancel_payment()) == (True, "Payment cancelled: give back 4.00 EUR cash")
    assert co.state.value == "returning" and co.returning is not None


def test_a_sale_the_ledger_refuses_at_the_commit_is_kept_to_retry(shop):
    """The item stopped being sold between the scan and the commit: the ledger refuses
    the sale, the tenders stay, the pay screen shows nothing more to pay, and paying
    again retries the commit without taking the money twice."""
    from kiosk.ledger.models import Item, Tender

    co = _checkout(shop, "staffed")
    co.staff_login("5678")
    co.scan("4006381333931")
    Item.update(active=False).where(Item.sku == "PEN").execute()
    refused = co.tender_cash("2.00")
    assert said(refused) == (
        False,
        "Could not complete the sale: item PEN is no longer sold. Call staff.",
    )
    assert german(refused).startswith("Der Verkauf konnte nicht abgeschlossen werden: ")
    assert co.state.value == "paying" and co.storage_full is None
    assert [(t.kind, t.amount) for t in co.payment.tenders] == [("cash", D("2.00"))]
    assert co.snapshot()["due"] == "0"
    assert said(co.pay()) == said(refused)
    Item.update(active=True).where(Item.sku == "PEN").execute()
    paid = co.pay()
    assert said(paid) == (
        True,
        f"Paid, thank you! Change: 0.50 EUR. Receipt {co.last_posted.number}",
    )
    assert [(t.kind, t.amount) for t in Tender.select()] == [("cash", D("2.00"))]


# ---------------------------------------------------------------- at a connected terminal


@pytest.fixture
def at_terminal(shop):
    """A self-checkout with the simulated ZVT terminal, its session log and its journal."""
    from kiosk.checkout.session import Checkout
    from kiosk.demo.terminal import TerminalSimulator
    from kiosk.drivers.base import MemoryDrawer, MemoryPrinter
    from tests.test_payment_checkout import terminal_for

    simulator = TerminalSimulator().start()
    log: list[dict] = []
    co = Checkout(shop, MemoryPrinter(), MemoryDrawer(), log=log.append,
                  terminal=terminal_for(simulator))  # fmt: skip
    yield co, simulator, log
    co.terminal.close()
    simulator.stop()


def test_card_tenders_at_a_terminal_word_for_word(at_terminal):
    co, sim, log = at_terminal
    co.scan("4006381333931")
    co.scan("4006381333931")  # 2.98
    typed = co.tender_card(None, "AUTH-1")
    assert said(typed) == (False, "Pay on the card terminal: insert or tap your card there")
    assert co.staff_login("5678").ok  # staff may take a card by hand when the link is down
    assert said(co.tender_card("1.00", "AUTH-1")) == (True, "Still to pay: 1.98 EUR")
    assert co.tender_card("0.98").ok and co.terminal_job is not None
    assert [e["pay"] for e in log if isinstance(e.get("pay"), dict)] == [
        {"card": None, "ref": "AUTH-1"},
        {"card": "1.00", "ref": "AUTH-1"},
        {"terminal": "0.98"},
    ]
    assert co.terminal_wait().ok and [t.amount for t in sim.approved()] == [98]


def test_cancelling_while_the_terminal_works_word_for_word(at_terminal):
    co, sim, _ = at_terminal
    sim.plan("timeout")
    co.scan("4006381333931")
    co.tender_card()
    while co.terminal_status != "insert_card":
        co.terminal_job.wait(0.05)
        co.terminal_poll()
    busy = co.cancel()
    assert said(busy) == (
        False,
        "The card terminal is still working: cancel the payment first",
    )
    stopping = co.cancel_payment()
    assert said(stopping) == (True, "Cancelling the card payment at the terminal")
    assert german(stopping) == "Die Kartenzahlung wird am Terminal abgebrochen"
    co.terminal_wait()


def test_cancelling_after_the_terminal_approved_reverses_it(at_terminal):
    from kiosk.ledger.models import Payment

    co, sim, _ = at_terminal
    co.scan("4006381333931")
    co.scan("4006381333931")  # 2.98
    assert said(co.tender_cash("0.50")) == (True, "Still to pay: 2.50 EUR")
    assert co.tender_card("1.00").ok and co.terminal_wait().ok
    (approved,) = Payment.select()
    cancelled = co.cancel_payment()
    assert said(cancelled) == (True, "Payment cancelled: give back 0.50 EUR cash")
    assert co.terminal_status == "processing" and co.terminal_job is not None
    assert co.state.value == "scanning" and co.payment.tenders == []
    reversal = Payment.get(Payment.kind == "reversal")
    assert (reversal.original_id, reversal.amount) == (approved.id, D("1.00"))
    assert co.terminal_wait().ok and sim.approved() == []
