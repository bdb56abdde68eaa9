"""Postings checked field by field, with the expected values written down: every column
of the rows a sale, return, void and exchange write, their audit rows, and the exact
refusals. Written to kill the mutants `./dev.sh mutate sales` found surviving (a
changed field, a lost argument, a wrong line number), and kept as plain tests."""

from __future__ import annotations

import pytest

from kiosk.ledger import catalog, catalog_csv, sales, stock
from kiosk.ledger.core import LedgerError
from kiosk.ledger.models import Audit, Tender, Txn, TxnLine
from kiosk.ledger.money import Tender as Pay
from kiosk.ledger.sales import ReturnLine, SaleLine
from kiosk.ledger.verify import verify
from tests.conftest import D


@pytest.fixture
def shop(ledger):
    """conftest's shop without hashing PINs (these tests never log in): mutation runs
    set this up hundreds of times."""
    from kiosk.ledger.models import Staff, utc_now
    from tests.conftest import CATALOG

    catalog_csv.import_text(ledger, CATALOG)
    for code, name, role in (("S1", "Sam", "supervisor"), ("C1", "Cat", "cashier")):
        Staff.create(code=code, name=name, role=role, pin_hash="-", created_at=utc_now())
    return ledger


LINE_FIELDS = ("line_no", "sku", "qty", "unit_price", "tax_code", "tax_rate", "gross",
               "discount", "net", "tax", "total", "barcode", "bom_id", "ref_line_id",
               "condition", "lot")  # fmt: skip


def lines(posted) -> list[tuple]:
    rows = TxnLine.select().where(TxnLine.txn == posted.id).order_by(TxnLine.line_no)
    return [tuple(getattr(row, f) for f in LINE_FIELDS) for row in rows]


def header(posted) -> tuple:
    t = Txn.get_by_id(posted.id)
    return (t.kind, t.staff, t.ref_id, t.net, t.tax, t.total, t.discount, t.rounding,
            t.change, t.reason, t.note)  # fmt: skip


def tenders(posted) -> list[tuple]:
    rows = Tender.select().where(Tender.txn == posted.id).order_by(Tender.id)
    return [(t.kind, t.amount, t.reference) for t in rows]


def audits(action: str) -> list[tuple]:
    rows = Audit.select().where(Audit.action == action).order_by(Audit.id)
    return [(a.staff, a.subject, a.field, a.old, a.new, a.detail) for a in rows]


def line_id(posted, line_no: int) -> int:
    return TxnLine.get((TxnLine.txn == posted.id) & (TxnLine.line_no == line_no)).id


def refuse(message: str, call, *args, **kwargs) -> None:
    with pytest.raises(LedgerError) as info:
        call(*args, **kwargs)
    assert str(info.value) == message


# ---------------------------------------------------------------- sales


def test_a_sale_writes_every_column(shop):
    posted = sales.post_sale(
        shop,
        [
            SaleLine("PEN", D("2"), price=D("1.20"), barcode="4006381333931", lot="L7"),
            SaleLine("CHEESE", amount=D("4.37"), barcode="2100456004374"),
            SaleLine("COFFEE", discount=D("0.99")),
        ],
        [Pay("card", D("14.77"), "A1")],
        staff="C1",
        note="regular",
    )
    # PEN 2 x 1.20 = 2.40, 19 % in: 0.38, net 2.02. CHEESE 4.37 from the label, 7 %:
    # 4.37 x 7 / 107 = 0.2858 -> 0.29, net 4.08. COFFEE 8.99 - 0.99 = 8.00, 7 %: 0.52, net 7.48.
    assert lines(posted) == [
        (1, "PEN", 2, D("1.20"), "A", D("0.19"), D("2.40"), 0, D("2.02"), D("0.38"), D("2.40"),
         "4006381333931", None, None, None, "L7"),
        (2, "CHEESE", 1, D("18.90"), "B", D("0.07"), D("4.37"), 0, D("4.08"), D("0.29"),
         D("4.37"), "2100456004374", None, None, None, None),
        (3, "COFFEE", 1, D("8.99"), "B", D("0.07"), D("8.99"), D("0.99"), D("7.48"), D("0.52"),
         D("8.00"), None, None, None, None, None),
    ]  # fmt: skip
    assert header(posted) == (
        "sale", "C1", None, D("13.58"), D("1.19"), D("14.77"), D("0.99"), 0, 0, None, "regular"
    )  # fmt: skip
    assert tenders(posted) == [("card", D("14.77"), "A1")]
    assert audits("price_override") == [("C1", "PEN", "price", "1.49", "1.20", None)]


def test_sale_refusals_word_for_word(shop):
    refuse("a sale needs at least one line", sales.post_sale, shop, [], [])
    pay = [Pay("cash", D("50.00"))]
    refuse(
        "PEN: quantity must be above zero", sales.post_sale, shop, [SaleLine("PEN", D("0"))], pay
    )
    refuse(
        "PEN: quantity must be above zero", sales.post_sale, shop, [SaleLine("PEN", D("-1"))], pay
    )
    refuse("unknown item 'NOPE'", sales.post_sale, shop, [SaleLine("NOPE")], pay)
    refuse("PEN: a price override needs a staff member", sales.post_sale, shop,
           [SaleLine("PEN", price=D("1.00"))], pay)  # fmt: skip
    refuse("discount 5.00 on PEN exceeds the line amount 1.49", sales.post_sale, shop,
           [SaleLine("PEN", discount=D("5.00"))], pay)  # fmt: skip
    refuse("PEN is sold by the piece: quantity 1.5 is not whole", sales.post_sale, shop,
           [SaleLine("PEN", D("1.5"))], pay)  # fmt: skip
    refuse("cash 1.00 does not cover 1.50", sales.post_sale, shop, [SaleLine("PEN")],
           [Pay("cash", D("1.00"))])  # fmt: skip
    catalog_csv.import_text(shop, "sku,name,price,tax,active\nPEN,Pen,1.49,A,0\n", "S1")
    refuse("item PEN is no longer sold", sales.post_sale, shop, [SaleLine("PEN")], pay)
    assert Txn.select().count() == 0


def test_the_same_price_given_again_is_no_override(shop):
    sales.post_sale(shop, [SaleLine("PEN", price=D("1.49"))], [Pay("card", D("1.49"), "A")])
    assert audits("price_override") == []


def test_weights_round_half_up_to_whole_grams(shop):
    sales.post_sale(shop, [SaleLine("BANANA", D("0.0125"))], [Pay("card", D("0.02"), "A")])
    assert stock.on_hand("BANANA") == -13  # 12.5 g -> 13 (half-even would give 12)


def test_bundle_components_count_their_quantity(shop):
    catalog.set_kit_bom(shop, "TRAVEL", {"CHARGER": 1, "CABLE": 2}, "S1")
    sale = sales.post_sale(shop, [SaleLine("TRAVEL", D("3"))], [Pay("card", D("74.97"), "A")])
    assert (stock.on_hand("CHARGER"), stock.on_hand("CABLE")) == (-3, -6)
    bom = lines(sale)[0][LINE_FIELDS.index("bom_id")]
    assert bom is not None and bom == catalog.current_bom("TRAVEL")[0].id
    back = sales.post_return(
        shop, [ReturnLine("TRAVEL", D("2"))], "unwanted", "C1", receipt=sale.number
    )
    assert (stock.on_hand("CHARGER"), stock.on_hand("CABLE")) == (-1, -2)
    assert lines(back)[0][LINE_FIELDS.index("bom_id")] == bom
    sales.post_return(shop, [ReturnLine("TRAVEL", D("2"))], "unwanted", "C1")  # no receipt
    assert (stock.on_hand("CHARGER"), stock.on_hand("CABLE")) == (1, 2)


# ---------------------------------------------------------------- returns


def test_a_return_against_a_receipt_writes_every_column(shop):
    sale = sales.post_sale(
        shop,
        [SaleLine("PEN", D("3"), barcode="4006381333931", lot="L1"), SaleLine("CABLE")],
        [Pay("card", D("14.46"), "A1")],
        staff="C1",
    )
    back = sales.post_return(
        shop,
        [ReturnLine("CABLE", condition="damaged"), ReturnLine("PEN", D("2"))],
        "defective",
        "S1",
        receipt=sale.number,
        note="box torn",
    )
    # CABLE 9.99, 19 % in: 1.60, net 8.39. PEN 2 of 3 at 4.47 (tax 0.71): 2.98, tax
    # 0.71 x 2 / 3 = 0.4733 -> 0.47, net 2.51.
    assert lines(back) == [
        (1, "CABLE", -1, D("9.99"), "A", D("0.19"), D("-9.99"), 0, D("-8.39"), D("-1.60"),
         D("-9.99"), None, None, line_id(sale, 2), "damaged", None),
        (2, "PEN", -2, D("1.49"), "A", D("0.19"), D("-2.98"), 0, D("-2.51"), D("-0.47"),
         D("-2.98"), None, None, line_id(sale, 1), "resaleable", "L1"),
    ]  # fmt: skip
    assert header(back) == ("return", "S1", sale.id, D("-10.90"), D("-2.07"), D("-12.97"), 0, 0,
                            0, "defective", "box torn")  # fmt: skip
    assert tenders(back) == [("card", D("-12.97"), None)]
    assert audits("return") == [("S1", sale.number, None, None, "-12.97", "defective")]
    assert stock.on_hand("CABLE", "damaged") == 1 and stock.on_hand("PEN") == -1


def test_a_sku_on_two_lines_is_returned_line_by_line(shop):
    sale = sales.post_sale(
        shop,
        [SaleLine("PEN", D("2")), SaleLine("CABLE"), SaleLine("PEN", D("2"), discount=D("0.98"))],
        [Pay("card", D("14.97"), "A1")],
    )
    first = sales.post_return(shop, [ReturnLine("PEN")], "unwanted", "C1", receipt=sale.number)
    assert [(r[0], r[2], r[10], r[13]) for r in lines(first)] == [
        (1, -1, D("-1.49"), line_id(sale, 1))
    ]
    # 3 more: the last PEN of line 1 (1.49), then both of line 3 (2.98 - 0.98 = 2.00).
    rest = sales.post_return(
        shop, [ReturnLine("PEN", D("3"))], "unwanted", "C1", receipt=sale.number
    )
    assert [(r[0], r[2], r[10], r[13]) for r in lines(rest)] == [
        (1, -1, D("-1.49"), line_id(sale, 1)),
        (2, -2, D("-2.00"), line_id(sale, 3)),
    ]
    refuse(f"only 0 of PEN can still be returned on receipt {sale.number}", sales.post_return,
           shop, [ReturnLine("PEN")], "unwanted", "C1", receipt=sale.number)  # fmt: skip


def test_a_return_can_name_the_receipt_line(shop):
    sale = sales.post_sale(
        shop, [SaleLine("PEN"), SaleLine("PEN", price=D("1.00"))], [Pay("card", D("2.49"), "A")],
        staff="S1",
    )  # fmt: skip
    back = sales.post_return(
        shop, [ReturnLine("PEN", line_no=2)], "unwanted", "C1", receipt=sale.number
    )
    assert [(r[3], r[10], r[13]) for r in lines(back)] == [
        (D("1.00"), D("-1.00"), line_id(sale, 2))
    ]
    refuse(f"PEN is not on receipt {sale.number}", sales.post_return, shop,
           [ReturnLine("PEN", line_no=3)], "unwanted", "C1", receipt=sale.number)  # fmt: skip


def test_parts_of_one_line_in_one_return_add_up(shop):
    sale = sales.post_sale(shop, [SaleLine("PEN", D("3"))], [Pay("card", D("4.47"), "A")])
    back = sales.post_return(
        shop, [ReturnLine("PEN"), ReturnLine("PEN")], "unwanted", "C1", receipt=sale.number
    )
    assert [(r[0], r[2], r[10]) for r in lines(back)] == [(1, -1, D("-1.49")), (2, -1, D("-1.49"))]
    last = sales.post_return(shop, [ReturnLine("PEN")], "unwanted", "C1", receipt=sale.number)
    assert lines(last)[0][10] == D("-1.49")  # 4.47 - 2.98
    refuse(f"only 0 of PEN can still be returned on receipt {sale.number}", sales.post_return,
           shop, [ReturnLine("PEN")], "unwanted", "C1", receipt=sale.number)  # fmt: skip


def test_returns_on_another_receipt_do_not_count(shop):
    a = sales.post_sale(shop, [SaleLine("PEN")], [Pay("card", D("1.49"), "A")])
    b = sales.post_sale(shop, [SaleLine("PEN")], [Pay("card", D("1.49"), "B")])
    sales.post_return(shop, [ReturnLine("PEN")], "unwanted", "C1", receipt=a.number)
    back = sales.post_return(shop, [ReturnLine("PEN")], "unwanted", "C1", receipt=b.number)
    assert tenders(back) == [("card", D("-1.49"), None)]  # b's card was not refunded yet
    assert lines(back)[0][10] == D("-1.49")


def test_a_return_without_a_receipt_writes_every_column(shop):
    back = sales.post_return(
        shop,
        [ReturnLine("BANANA", D("0.5")), ReturnLine("TRAVEL", condition="damaged")],
        "wrong_item",
        "C1",
    )
    bom = catalog.current_bom("TRAVEL")[0].id
    # BANANA 0.5 x 1.99 = 0.995 -> 1.00, 7 % in: 0.07, net 0.93. TRAVEL 24.99, 19 %: 3.99.
    assert lines(back) == [
        (1, "BANANA", D("-0.5"), D("1.99"), "B", D("0.07"), D("-1.00"), 0, D("-0.93"),
         D("-0.07"), D("-1.00"), None, None, None, "resaleable", None),
        (2, "TRAVEL", -1, D("24.99"), "A", D("0.19"), D("-24.99"), 0, D("-21.00"), D("-3.99"),
         D("-24.99"), None, bom, None, "damaged", None),
    ]  # fmt: skip
    assert header(back)[:3] == ("return", "C1", None)
    assert stock.on_hand("BANANA") == 500
    assert (stock.on_hand("CHARGER", "damaged"), stock.on_hand("CABLE", "damaged")) == (1, 1)
    # 25.99 in cash, 519.8 steps of 0.05 -> 520: 26.00.
    assert tenders(back) == [("cash", D("-26.00"), None)]


def test_return_refusals_word_for_word(shop):
    sale = sales.post_sale(shop, [SaleLine("PEN")], [Pay("card", D("1.49"), "A")])
    refuse("a return needs at least one line", sales.post_return, shop, [], "unwanted", "C1")
    refuse("return reason must be one of damaged, defective, wrong_item, unwanted, "
           "not_as_described, other", sales.post_return, shop, [ReturnLine("PEN")], "meh",
           "C1")  # fmt: skip
    for qty in ("0", "-1"):
        refuse("PEN: return quantity must be above zero", sales.post_return, shop,
               [ReturnLine("PEN", D(qty))], "unwanted", "C1")  # fmt: skip
    refuse("condition must be one of resaleable, damaged", sales.post_return, shop,
           [ReturnLine("PEN", condition="used")], "unwanted", "C1")  # fmt: skip
    refuse("PEN is sold by the piece: quantity 0.5 is not whole", sales.post_return, shop,
           [ReturnLine("PEN", D("0.5"))], "unwanted", "C1")  # fmt: skip
    refuse("PEN is sold by the piece: quantity 0.5 is not whole", sales.post_return, shop,
           [ReturnLine("PEN", D("0.5"))], "unwanted", "C1", receipt=sale.number)  # fmt: skip
    refuse("no sale with receipt number till-01-999999", sales.post_return, shop,
           [ReturnLine("PEN")], "unwanted", "C1", receipt="till-01-999999")  # fmt: skip


def test_preview_return_shows_the_rows_and_posts_nothing(shop):
    sale = sales.post_sale(shop, [SaleLine("PEN", D("3"))], [Pay("card", D("4.47"), "A")])
    rows = sales.preview_return(shop, sale.number, [ReturnLine("PEN", D("2"))])
    assert [(r.line_no, r.sku, r.qty, r.total, r.tax, r.ref_line_id) for r in rows] == [
        (1, "PEN", D("-2"), D("-2.98"), D("-0.47"), line_id(sale, 1))
    ]
    assert Txn.select().count() == 1
    unreceipted = sales.preview_return(shop, None, [ReturnLine("CABLE")])
    assert [(r.sku, r.total) for r in unreceipted] == [("CABLE", D("-9.99"))]
    with pytest.raises(LedgerError, match="only 3 of PEN can still be returned"):
        sales.preview_return(shop, sale.number, [ReturnLine("PEN", D("4"))])


def test_tender_kinds_of_one_transaction(shop):
    a = sales.post_sale(shop, [SaleLine("PEN")], [Pay("card", D("1.00"), "A"), Pay("cash", D("1"))])
    b = sales.post_sale(shop, [SaleLine("PEN")], [Pay("voucher", D("1.49"), "V")])
    assert sales.tender_kinds(a.id) == {"card", "cash"}
    assert sales.tender_kinds(b.id) == {"voucher"}


# ---------------------------------------------------------------- refund tenders


def test_two_card_payments_are_both_refunded_to_the_card(shop):
    sale = sales.post_sale(
        shop, [SaleLine("CHARGER")], [Pay("card", D("10.00"), "A"), Pay("card", D("9.99"), "B")]
    )
    back = sales.post_return(shop, [ReturnLine("CHARGER")], "unwanted", "C1", receipt=sale.number)
    assert tenders(back) == [("card", D("-19.99"), None)]


def test_a_small_voucher_remainder_goes_back_to_the_voucher(shop):
    sale = sales.post_sale(
        shop, [SaleLine("CABLE")], [Pay("card", D("9.49"), "A"), Pay("voucher", D("0.50"), "V")]
    )
    back = sales.post_return(shop, [ReturnLine("CABLE")], "unwanted", "C1", receipt=sale.number)
    assert tenders(back) == [("card", D("-9.49"), None), ("voucher", D("-0.50"), None)]


def test_a_small_cash_remainder_goes_back_in_cash(shop):
    # 9.99: card 9.00, cash 0.99 -> 1.00 taken. Back: card 9.00, cash 0.99 -> 1.00.
    sale = sales.post_sale(
        shop, [SaleLine("CABLE")], [Pay("card", D("9.00"), "A"), Pay("cash", D("1.00"))]
    )
    back = sales.post_return(shop, [ReturnLine("CABLE")], "unwanted", "C1", receipt=sale.number)
    assert tenders(back) == [("card", D("-9.00"), None), ("cash", D("-1.00"), None)]


def test_a_card_refunded_in_full_is_passed_over(shop):
    sale = sales.post_sale(
        shop, [SaleLine("PEN"), SaleLine("CABLE")], [Pay("card", D("1.49"), "A"),
                                                      Pay("voucher", D("9.99"), "V")],
    )  # fmt: skip
    first = sales.post_return(shop, [ReturnLine("PEN")], "unwanted", "C1", receipt=sale.number)
    assert tenders(first) == [("card", D("-1.49"), None)]
    second = sales.post_return(shop, [ReturnLine("CABLE")], "unwanted", "C1", receipt=sale.number)
    assert tenders(second) == [("voucher", D("-9.99"), None)]


def test_an_exchange_refund_to_the_card_counts_against_the_card(shop):
    sale = sales.post_sale(
        shop, [SaleLine("CABLE"), SaleLine("PEN")], [Pay("card", D("11.48"), "A")]
    )
    # CABLE back (9.99), PEN out (1.49): 8.50 back to the card.
    sales.post_exchange(shop, sale.number, [ReturnLine("CABLE")], [SaleLine("PEN")],
                        [Pay("card", D("-8.50"), "A")], "C1")  # fmt: skip
    back = sales.post_return(shop, [ReturnLine("PEN")], "unwanted", "C1", receipt=sale.number)
    # The card has 11.48 - 8.50 = 2.98 left: the pen's 1.49 fits.
    assert tenders(back) == [("card", D("-1.49"), None)]
    more = sales.post_sale(shop, [SaleLine("CHARGER")], [Pay("card", D("19.99"), "B")])
    sales.post_exchange(shop, more.number, [ReturnLine("CHARGER")], [SaleLine("PEN")],
                        [Pay("card", D("-18.50"), "B")], "C1")  # fmt: skip
    pen = sales.post_sale(shop, [SaleLine("PEN")], [Pay("card", D("1.49"), "C")])
    back = sales.post_return(shop, [ReturnLine("PEN")], "unwanted", "C1", receipt=pen.number)
    assert tenders(back) == [("card", D("-1.49"), None)]  # other receipts' refunds: not this


# ---------------------------------------------------------------- voids


def test_a_void_writes_every_column(shop):
    catalog.set_kit_bom(shop, "TRAVEL", {"CHARGER": 1, "CABLE": 1}, "S1")
    sale = sales.post_sale(
        shop,
        [SaleLine("PEN", D("2"), barcode="4006381333931", lot="L1"), SaleLine("TRAVEL")],
        [Pay("card", D("10.00"), "A"), Pay("card", D("5.00"), "B"), Pay("cash", D("20.00"))],
        staff="C1",
    )
    # 2.98 + 24.99 = 27.97: cards 15.00, cash 12.97 -> 12.95 (-0.02), 7.05 change.
    assert (sale.rounding, sale.change) == (D("-0.02"), D("7.05"))
    void = sales.post_void(shop, sale.number, "S1")
    bom = catalog.current_bom("TRAVEL")[0].id
    assert lines(void) == [
        (1, "PEN", -2, D("1.49"), "A", D("0.19"), D("-2.98"), 0, D("-2.50"), D("-0.48"),
         D("-2.98"), "4006381333931", None, line_id(sale, 1), None, "L1"),
        (2, "TRAVEL", -1, D("24.99"), "A", D("0.19"), D("-24.99"), 0, D("-21.00"), D("-3.99"),
         D("-24.99"), None, bom, line_id(sale, 2), None, None),
    ]  # fmt: skip
    assert header(void) == ("void", "S1", sale.id, D("-23.50"), D("-4.47"), D("-27.97"), 0,
                            D("0.02"), 0, "post_void", None)  # fmt: skip
    assert sorted(tenders(void)) == [("card", D("-15.00"), None), ("cash", D("-12.95"), None)]
    assert audits("post_void") == [("S1", sale.number, None, "27.97", None, "post_void")]
    assert (stock.on_hand("PEN"), stock.on_hand("CHARGER"), stock.on_hand("CABLE")) == (0, 0, 0)
    assert verify(shop) == []


def test_void_refusals_word_for_word(shop):
    sale = sales.post_sale(shop, [SaleLine("PEN")], [Pay("card", D("1.49"), "A")])
    refuse("needs a supervisor; C1 is a cashier", sales.post_void, shop, sale.number, "C1")
    refuse("needs a supervisor: no active staff member 'Z9'", sales.post_void, shop,
           sale.number, "Z9")  # fmt: skip
    refuse("needs a supervisor: no active staff member None", sales.post_void, shop,
           sale.number, None)  # fmt: skip
    from kiosk.ledger import staff

    staff.deactivate(shop, "S1", by=None)
    refuse("needs a supervisor: no active staff member 'S1'", sales.post_void, shop,
           sale.number, "S1")  # fmt: skip
    staff.add(shop, "S2", "Sue", "supervisor", "4321", by=None)
    exchange = sales.post_exchange(shop, sale.number, [ReturnLine("PEN")], [SaleLine("PEN")],
                                   [], "C1")  # fmt: skip
    refuse(f"receipt {sale.number} already has returns; return the rest instead",
           sales.post_void, shop, sale.number, "S2")  # fmt: skip
    refuse(f"no sale with receipt number {exchange.number}", sales.post_void, shop,
           exchange.number, "S2")  # fmt: skip
    other = sales.post_sale(shop, [SaleLine("PEN")], [Pay("card", D("1.49"), "A")])
    sales.post_void(shop, other.number, "S2", reason="wrong till")
    assert Txn.get(Txn.kind == "void").reason == "wrong till"
    refuse(f"receipt {other.number} was voided", sales.post_void, shop, other.number, "S2")


# ---------------------------------------------------------------- exchanges


def test_an_exchange_writes_every_column(shop):
    sale = sales.post_sale(shop, [SaleLine("CABLE")], [Pay("card", D("9.99"), "A")])
    swap = sales.post_exchange(
        shop,
        sale.number,
        [ReturnLine("CABLE")],
        [SaleLine("PEN", D("2"), price=D("1.00")), SaleLine("COFFEE")],
        [Pay("cash", D("1.00"))],
        "S1",
        reason="defective",
    )
    # back 9.99; out 2.00 + 8.99 = 10.99; 1.00 to pay in cash.
    assert [(r[0], r[1], r[2], r[10], r[13]) for r in lines(swap)] == [
        (1, "CABLE", -1, D("-9.99"), line_id(sale, 1)),
        (2, "PEN", 2, D("2.00"), None),
        (3, "COFFEE", 1, D("8.99"), None),
    ]
    assert header(swap)[:3] == ("exchange", "S1", sale.id)
    assert header(swap)[5] == D("1.00") and header(swap)[9] == "defective"
    assert audits("exchange") == [("S1", sale.number, None, None, "1.00", "defective")]
    assert audits("price_override") == [("S1", "PEN", "price", "1.49", "1.00", None)]
    assert (stock.on_hand("CABLE"), stock.on_hand("PEN"), stock.on_hand("COFFEE")) == (0, -2, -1)


def test_exchange_refusals_word_for_word(shop):
    refuse("an exchange needs returned and sold lines", sales.post_exchange, shop, None,
           [ReturnLine("PEN")], [], [], "C1")  # fmt: skip
    refuse("an exchange needs returned and sold lines", sales.post_exchange, shop, None,
           [], [SaleLine("PEN")], [], "C1")  # fmt: skip
    refuse("return reason must be one of damaged, defective, wrong_item, unwanted, "
           "not_as_described, other", sales.post_exchange, shop, None, [ReturnLine("PEN")],
           [SaleLine("PEN")], [], "C1", reason="bored")  # fmt: skip
    refuse("PEN: a price override needs a staff member", sales.post_exchange, shop, None,
           [ReturnLine("CABLE")], [SaleLine("PEN", price=D("1.00"))],
           [Pay("cash", D("-9.00"))], None)  # fmt: skip


# ---------------------------------------------------------------- stock


def stock_lines(posted) -> list[tuple]:
    rows = TxnLine.select().where(TxnLine.txn == posted.id).order_by(TxnLine.line_no)
    return [(r.line_no, r.sku, r.qty, r.unit_price, r.tax_code, r.total, r.bom_id, r.lot)
            for r in rows]  # fmt: skip


def last_event() -> dict:
    import json

    from kiosk.ledger.models import Outbox

    return json.loads(Outbox.select().order_by(Outbox.seq.desc()).get().payload)


def test_receiving_writes_every_column(shop):
    posted = stock.receive(
        shop,
        [
            stock.ReceiveLine("PEN", 1, cost=D("0.38"), lot="L1"),
            stock.ReceiveLine("CABLE", 5, D("0")),
        ],
        "C1",
        "DN-77",
    )
    assert stock_lines(posted) == [
        (1, "PEN", 1, D("0.38"), "", 0, None, "L1"),
        (2, "CABLE", 5, 0, "", 0, None, None),
    ]
    assert header(posted)[:2] == ("receive", "C1") and header(posted)[10] == "DN-77"
    assert (stock.on_hand("PEN"), stock.on_hand("CABLE")) == (1, 5)


def test_receiving_refusals_word_for_word(shop):
    refuse("receiving needs at least one line", stock.receive, shop, [], "C1")
    for qty in (0, -2):
        refuse("PEN: received quantity must be above zero", stock.receive, shop,
               [stock.ReceiveLine("PEN", qty)], "C1")  # fmt: skip
    refuse("PEN: cost must be zero or more", stock.receive, shop,
           [stock.ReceiveLine("PEN", 1, cost=D("-0.01"))], "C1")  # fmt: skip
    refuse("PEN quantity must be a whole number of base units, not '1.5'", stock.receive, shop,
           [stock.ReceiveLine("PEN", D("1.5"))], "C1")  # fmt: skip
    refuse("PEN quantity '1000001' must be from -1000000 to 1000000", stock.receive, shop,
           [stock.ReceiveLine("PEN", 1_000_001)], "C1")  # fmt: skip
    assert Txn.select().count() == 0


def test_an_adjustment_writes_every_column(shop):
    posted = stock.adjust(shop, "PEN", 1, "found", "S1")
    assert stock_lines(posted) == [(1, "PEN", 1, 0, "", 0, None, None)]
    assert header(posted)[:2] == ("adjust", "S1") and header(posted)[9] == "found"
    assert audits("adjust") == [("S1", "PEN", "on_hand", None, "1", "found")]
    assert stock.on_hand("PEN") == 1


def test_adjustment_refusals_word_for_word(shop):
    refuse("adjustment reason must be one of damaged, theft, expired, found, correction, "
           "sample, other", stock.adjust, shop, "PEN", 1, "whim", "S1")  # fmt: skip
    refuse("an adjustment of zero changes nothing", stock.adjust, shop, "PEN", 0, "found", "S1")
    refuse("adjustment must be a whole number of base units, not 'True'", stock.adjust, shop,
           "PEN", True, "found", "S1")  # fmt: skip
    refuse(f"adjustment must be a whole number of base units, not {'1' * 40!r}",
           stock.adjust, shop, "PEN", "1" * 40 + ".5", "found", "S1")  # fmt: skip
    refuse("adjustment '-1000001' must be from -1000000 to 1000000", stock.adjust, shop, "PEN",
           -1_000_001, "found", "S1")  # fmt: skip


def test_a_count_writes_every_column(shop, monkeypatch):
    from datetime import UTC, datetime, timedelta, timezone

    stock.receive(shop, [stock.ReceiveLine("PEN", 10)], "C1")
    now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    monkeypatch.setattr(stock, "utc_now", lambda: now)
    cable_at = datetime(2030, 1, 1, 13, 0, 5, tzinfo=timezone(timedelta(hours=1)))  # = now+5s
    posted = stock.count(shop, {"PEN": 0, "CABLE": 4, "COFFEE": 1}, "S1", {"CABLE": cable_at})
    assert stock_lines(posted) == [
        (1, "CABLE", 4, 0, "", 0, None, None),
        (2, "COFFEE", 1, 0, "", 0, None, None),
        (3, "PEN", 0, 0, "", 0, None, None),
    ]
    assert header(posted)[:2] == ("count", "S1")
    assert Txn.get_by_id(posted.id).effective_at == now  # the earliest moment
    event = last_event()
    assert event["counted"] == {"CABLE": 4, "COFFEE": 1, "PEN": 0}
    assert event["counted_at"] == {
        "CABLE": "2030-01-01T12:00:05.000000Z",  # five seconds ahead is still allowed
        "COFFEE": "2030-01-01T12:00:00.000000Z",  # not in the mapping: now
        "PEN": "2030-01-01T12:00:00.000000Z",
    }
    # Never moved: expected 0, so the count is the delta (PEN: 10 received, 0 counted).
    assert event["moves"] == [
        {"sku": "CABLE", "delta": 4}, {"sku": "COFFEE", "delta": 1}, {"sku": "PEN", "delta": -10}
    ]  # fmt: skip
    assert (stock.on_hand("CABLE"), stock.on_hand("PEN"), stock.on_hand("CHARGER")) == (4, 0, 0)
    refuse("PEN: counted_at is in the future", stock.count, shop, {"PEN": 1}, "S1",
           now + timedelta(seconds=5, microseconds=1))  # fmt: skip


def test_a_move_at_the_moment_of_counting_counts_before_it(shop):
    from kiosk.ledger.models import StockMove

    stock.receive(shop, [stock.ReceiveLine("PEN", 10)], "C1")
    sales.post_sale(shop, [SaleLine("PEN", D("2"))], [Pay("card", D("2.98"), "A")])
    sold_at = StockMove.select().order_by(StockMove.id.desc()).get().at
    stock.count(shop, {"PEN": 8}, "C1", counted_at=sold_at)
    assert stock.on_hand("PEN") == 8 and last_event()["moves"] == []


def test_count_refusals_word_for_word(shop):
    from datetime import datetime

    refuse("a count needs at least one item", stock.count, shop, {}, "C1")
    refuse("counted_at must carry a time zone", stock.count, shop, {"PEN": 1}, "C1",
           datetime(2026, 1, 1))  # fmt: skip
    refuse("PEN: a counted quantity cannot be negative", stock.count, shop, {"PEN": -1}, "C1")
    refuse("PEN count must be a whole number of base units, not '2.5'", stock.count, shop,
           {"PEN": D("2.5")}, "C1")  # fmt: skip


def test_a_kit_build_writes_every_column(shop):
    posted = stock.build_kit(shop, "REPAIR", 2, "S1", lot="K9")
    bom = catalog.current_bom("REPAIR")[0]
    assert stock_lines(posted) == [(1, "REPAIR", 2, 0, "", 0, bom.id, "K9")]
    assert header(posted)[:2] == ("kit_build", "S1") and header(posted)[10] == f"bom v{bom.version}"
    assert (stock.on_hand("REPAIR"), stock.on_hand("SCREW"), stock.on_hand("PRY")) == (2, -2, -4)


def test_kit_build_refusals_word_for_word(shop):
    for qty in (0, -1):
        refuse("build at least one kit", stock.build_kit, shop, "REPAIR", qty, "S1")
    refuse("PEN is not a kit item", stock.build_kit, shop, "PEN", 1, "S1")
    refuse("kit quantity must be a whole number of base units, not '1.5'", stock.build_kit,
           shop, "REPAIR", D("1.5"), "S1")  # fmt: skip
    refuse("kit quantity '10000' must be from -9999 to 9999", stock.build_kit, shop, "REPAIR",
           10_000, "S1")  # fmt: skip
