import json

import pytest

from kiosk.ledger import sales, stock
from kiosk.ledger.core import LedgerError
from kiosk.ledger.models import Audit, Outbox, Tender, Txn, TxnLine
from kiosk.ledger.money import Tender as Pay
from kiosk.ledger.reports import stock as stock_rows
from kiosk.ledger.sales import ReturnLine, SaleLine
from kiosk.ledger.verify import verify
from tests.conftest import D


def on_hand(sku, location="main"):
    return stock.on_hand(sku, location)


def events():
    return [json.loads(row.payload) for row in Outbox.select().order_by(Outbox.seq)]


def sell(shop, *lines, tenders=None):
    tenders = tenders or [Pay("cash", D("500.00"))]
    return sales.post_sale(shop, list(lines), tenders)


def test_sale_writes_everything_in_one_transaction(shop):
    posted = sell(
        shop,
        SaleLine("PEN", D("2")),
        SaleLine("WATER", D("6"), barcode="14001234000012"),
        SaleLine("BANANA", D("0.532")),
        tenders=[Pay("card", D("5.00"), "AUTH-1"), Pay("cash", D("10.00"))],
    )
    assert posted.number == "till-01-000001"
    assert posted.total == D("8.78")  # 2.98 + 4.74 + 1.06
    assert posted.rounding == D("0.02") and posted.change == D("6.20")
    txn = Txn.get_by_id(posted.id)
    assert [li.sku for li in txn.lines.order_by(TxnLine.line_no)] == ["PEN", "WATER", "BANANA"]
    assert {t.kind: t.reference for t in txn.tenders} == {"card": "AUTH-1", "cash": None}
    assert on_hand("PEN") == -2 and on_hand("WATER") == -6 and on_hand("BANANA") == -532
    (event,) = events()
    assert event == {
        "v": 1,
        "device": "till-01",
        "seq": 1,
        "id": "till-01:1",
        "ts": event["ts"],
        "kind": "sale",
        "txn": "till-01-000001",
        "moves": [
            {"sku": "BANANA", "delta": -532},
            {"sku": "PEN", "delta": -2},
            {"sku": "WATER", "delta": -6},
        ],
        "clock": event["clock"],  # this machine's NTP state (kiosk/clock.py)
    }
    assert event["ts"].endswith("Z") and event["clock"] in ("synced", "unsynced")
    assert verify(shop) == []


def test_failed_sale_leaves_no_trace(shop):
    with pytest.raises(LedgerError, match="does not cover"):
        sell(shop, SaleLine("PEN"), tenders=[Pay("cash", D("1.00"))])
    with pytest.raises(LedgerError, match="unknown item 'NOPE'"):
        sell(shop, SaleLine("PEN"), SaleLine("NOPE"))
    with pytest.raises(LedgerError, match="not whole"):
        sell(shop, SaleLine("PEN", D("1.5")))
    assert Txn.select().count() == 0 and Outbox.select().count() == 0
    assert on_hand("PEN") == 0
    assert shop.peek_value("seq") == 0  # the counter rolled back with the sale


def test_bundle_kit_sells_its_components_and_records_the_bom(shop):
    posted = sell(shop, SaleLine("TRAVEL"))
    line = TxnLine.get(TxnLine.txn == posted.id)
    assert line.bom is not None and line.bom.version == 1
    assert on_hand("CHARGER") == -1 and on_hand("CABLE") == -1 and on_hand("TRAVEL") == 0


def test_price_override_needs_staff_and_is_audited(shop):
    with pytest.raises(LedgerError, match="needs a staff member"):
        sell(shop, SaleLine("PEN", price=D("0.99")))
    posted = sales.post_sale(
        shop, [SaleLine("PEN", price=D("0.99"))], [Pay("cash", D("1.00"))], staff="S1"
    )
    assert posted.total == D("0.99")
    row = Audit.get(Audit.action == "price_override")
    assert (row.staff, row.subject, row.old, row.new) == ("S1", "PEN", "1.49", "0.99")


def test_return_against_receipt_refunds_what_was_paid(shop):
    sale = sell(
        shop,
        SaleLine("PEN", D("3"), discount=D("0.47")),  # 4.47 - 0.47 = 4.00 for 3
        tenders=[Pay("card", D("4.00"), "A1")],
    )
    first = sales.post_return(
        shop, [ReturnLine("PEN", D("1"))], "unwanted", "C1", receipt=sale.number
    )
    assert first.total == D("-1.33")  # round(4.00 / 3)
    second = sales.post_return(
        shop, [ReturnLine("PEN", D("2"))], "unwanted", "C1", receipt=sale.number
    )
    assert second.total == D("-2.67")  # the remainder: exactly 4.00 back in all
    refunds = Tender.select().where(Tender.txn.in_([first.id, second.id]))
    assert {t.kind for t in refunds} == {"card"}  # back to the original tender
    with pytest.raises(LedgerError, match="only 0 of PEN can still be returned"):
        sales.post_return(shop, [ReturnLine("PEN")], "unwanted", "C1", receipt=sale.number)
    assert on_hand("PEN") == 0
    assert verify(shop) == []


def test_damaged_return_goes_to_the_damaged_location(shop):
    sale = sell(shop, SaleLine("CHARGER"))
    sales.post_return(
        shop, [ReturnLine("CHARGER", condition="damaged")], "defective", "C1", receipt=sale.number
    )
    assert on_hand("CHARGER") == -1 and on_hand("CHARGER", "damaged") == 1
    assert events()[-1]["moves"] == []  # sellable stock did not change
    row = next(r for r in stock_rows("CHARGER"))
    assert row.locations == {"main": -1, "damaged": 1}


def test_return_without_receipt_uses_current_price_and_cash(shop):
    posted = sales.post_return(shop, [ReturnLine("COFFEE", D("2"))], "unwanted", "S1")
    assert posted.total == D("-17.98")
    (tender,) = Tender.select().where(Tender.txn == posted.id)
    assert (tender.kind, tender.amount) == ("cash", D("-18.00"))  # cash rounds to 0.05
    assert posted.rounding == D("-0.02")
    assert on_hand("COFFEE") == 2


def test_return_refusals(shop):
    sale = sell(shop, SaleLine("PEN"))
    with pytest.raises(LedgerError, match="return reason"):
        sales.post_return(shop, [ReturnLine("PEN")], "because", "C1", receipt=sale.number)
    with pytest.raises(LedgerError, match="not on receipt"):
        sales.post_return(shop, [ReturnLine("CABLE")], "unwanted", "C1", receipt=sale.number)
    with pytest.raises(LedgerError, match="no sale with receipt number"):
        sales.post_return(shop, [ReturnLine("PEN")], "unwanted", "C1", receipt="till-01-999999")
    with pytest.raises(LedgerError, match="condition"):
        sales.post_return(
            shop, [ReturnLine("PEN", condition="meh")], "unwanted", "C1", receipt=sale.number
        )


def test_bundle_return_restores_components_of_the_sold_version(shop):
    from kiosk.ledger import catalog

    sale = sell(shop, SaleLine("TRAVEL"))
    catalog.set_kit_bom(shop, "TRAVEL", {"CHARGER": 1, "CABLE": 2}, "S1")  # version 2
    sales.post_return(shop, [ReturnLine("TRAVEL")], "unwanted", "C1", receipt=sale.number)
    assert on_hand("CABLE") == 0 and on_hand("CHARGER") == 0


def test_post_void_reverses_a_whole_sale_once(shop):
    sale = sell(
        shop,
        SaleLine("PEN", D("2")),
        SaleLine("COFFEE"),
        tenders=[Pay("card", D("5.00"), "A"), Pay("cash", D("20.00"))],
    )
    with pytest.raises(LedgerError, match="needs a supervisor"):
        sales.post_void(shop, sale.number, "C1")
    void = sales.post_void(shop, sale.number, "S1", reason="customer left")
    assert void.total == -sale.total and void.rounding == -sale.rounding
    tenders = {t.kind: t.amount for t in Tender.select().where(Tender.txn == void.id)}
    assert tenders == {"card": D("-5.00"), "cash": -(sale.due - D("5.00"))}
    assert on_hand("PEN") == 0 and on_hand("COFFEE") == 0
    with pytest.raises(LedgerError, match="was voided"):
        sales.post_void(shop, sale.number, "S1")
    with pytest.raises(LedgerError, match="was voided"):
        sales.post_return(shop, [ReturnLine("PEN")], "unwanted", "S1", receipt=sale.number)
    assert verify(shop) == []


def test_void_after_a_return_is_refused(shop):
    sale = sell(shop, SaleLine("PEN", D("2")))
    sales.post_return(shop, [ReturnLine("PEN")], "unwanted", "C1", receipt=sale.number)
    with pytest.raises(LedgerError, match="already has returns"):
        sales.post_void(shop, sale.number, "S1")


def test_exchange_takes_back_and_sells_in_one_transaction(shop):
    sale = sell(shop, SaleLine("CABLE"), tenders=[Pay("cash", D("10.00"))])
    swap = sales.post_exchange(
        shop,
        sale.number,
        [ReturnLine("CABLE")],
        [SaleLine("CHARGER")],
        [Pay("card", D("10.00"), "X")],
        "C1",
    )
    assert swap.total == D("10.00")  # 19.99 - 9.99
    assert on_hand("CABLE") == 0 and on_hand("CHARGER") == -1
    assert events()[-1]["kind"] == "exchange"
    assert events()[-1]["moves"] == [
        {"sku": "CABLE", "delta": 1},
        {"sku": "CHARGER", "delta": -1},
    ]
    cheaper = sales.post_exchange(
        shop,
        swap.number,
        [ReturnLine("CHARGER")],
        [SaleLine("PEN")],
        [Pay("cash", D("-18.50"))],
        "C1",
    )
    assert cheaper.total == D("-18.50") and cheaper.rounding == D("0.00")
    assert verify(shop) == []


def test_seq_is_gap_free_and_survives_reopening(shop, config):
    from kiosk.ledger.core import Ledger

    for _ in range(3):
        sell(shop, SaleLine("PEN"))
    shop.close()
    with Ledger.open(config) as again:
        sales.post_sale(again, [SaleLine("PEN")], [Pay("cash", D("2.00"))])
        assert [e["seq"] for e in events()] == [1, 2, 3, 4]
        assert verify(again) == []
