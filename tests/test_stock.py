import json
from datetime import timedelta

import pytest

from kiosk.ledger import catalog, sales, stock
from kiosk.ledger.core import LedgerError
from kiosk.ledger.models import Audit, KitBom, Outbox, TxnLine, utc_now
from kiosk.ledger.money import Tender as Pay
from kiosk.ledger.sales import SaleLine
from kiosk.ledger.verify import verify
from tests.conftest import D


def last_event():
    return json.loads(Outbox.select().order_by(Outbox.seq.desc()).first().payload)


def test_receive_and_adjust(shop):
    stock.receive(shop, [stock.ReceiveLine("PEN", 100, cost=D("0.38"), lot="L1")], "C1", "DN-77")
    assert stock.on_hand("PEN") == 100
    assert last_event()["kind"] == "receive"
    stock.adjust(shop, "PEN", -3, "theft", "S1")
    assert stock.on_hand("PEN") == 97
    assert Audit.get(Audit.action == "adjust").new == "-3"
    with pytest.raises(LedgerError, match="reason"):
        stock.adjust(shop, "PEN", 1, "whim", "S1")
    with pytest.raises(LedgerError, match="whole number"):
        stock.receive(shop, [stock.ReceiveLine("PEN", D("1.5"))], "C1")
    with pytest.raises(LedgerError, match="unknown item"):
        stock.receive(shop, [stock.ReceiveLine("NOPE", 1)], "C1")
    assert verify(shop) == []


def test_count_does_not_overwrite_sales_after_the_count(shop):
    stock.receive(shop, [stock.ReceiveLine("PEN", 50)], "C1")
    counted_at = utc_now()
    # Two pens are sold after the shelf was counted but before the count is posted.
    sales.post_sale(shop, [SaleLine("PEN", D("2"))], [Pay("cash", D("5.00"))])
    stock.count(shop, {"PEN": 47}, "C1", counted_at=counted_at)  # 3 were missing at count
    assert stock.on_hand("PEN") == 45  # 47 counted, minus the 2 sold afterwards
    event = last_event()
    assert event["kind"] == "count"
    assert event["counted"] == {"PEN": 47}
    assert event["moves"] == [{"sku": "PEN", "delta": -3}]
    assert event["counted_at"]["PEN"] <= event["ts"]


def test_count_session_with_a_moment_per_sku(shop):
    stock.receive(shop, [stock.ReceiveLine("PEN", 10), stock.ReceiveLine("CABLE", 10)], "C1")
    pen_counted = utc_now()
    sales.post_sale(shop, [SaleLine("PEN"), SaleLine("CABLE")], [Pay("cash", D("20.00"))])
    cable_counted = utc_now()  # the cable shelf was counted after the sale
    stock.count(shop, {"PEN": 10, "CABLE": 9}, "C1", {"PEN": pen_counted, "CABLE": cable_counted})
    assert stock.on_hand("PEN") == 9 and stock.on_hand("CABLE") == 9
    event = last_event()
    assert set(event["counted_at"]) == {"PEN", "CABLE"}
    assert event["moves"] == []
    assert verify(shop) == []


def test_second_count_sees_the_first(shop):
    stock.receive(shop, [stock.ReceiveLine("PEN", 10)], "C1")
    t1 = utc_now()
    stock.count(shop, {"PEN": 8}, "C1", counted_at=t1)
    stock.count(shop, {"PEN": 8}, "C1", counted_at=t1 + timedelta(microseconds=1))
    assert stock.on_hand("PEN") == 8
    assert last_event()["moves"] == []


def test_count_refusals(shop):
    with pytest.raises(LedgerError, match="future"):
        stock.count(shop, {"PEN": 1}, "C1", counted_at=utc_now() + timedelta(hours=1))
    with pytest.raises(LedgerError, match="negative"):
        stock.count(shop, {"PEN": -1}, "C1")
    with pytest.raises(LedgerError, match="time zone"):
        stock.count(shop, {"PEN": 1}, "C1", counted_at=utc_now().replace(tzinfo=None))


def test_kit_build_consumes_the_current_bom(shop):
    stock.receive(shop, [stock.ReceiveLine("SCREW", 10), stock.ReceiveLine("PRY", 10)], "C1")
    stock.build_kit(shop, "REPAIR", 3, "C1", lot="K-1")
    assert (stock.on_hand("REPAIR"), stock.on_hand("SCREW"), stock.on_hand("PRY")) == (3, 7, 4)
    line = TxnLine.select().order_by(TxnLine.id.desc()).first()
    assert line.bom.version == 1 and line.lot == "K-1"
    assert last_event()["kind"] == "kit_build"
    # Version 1 was used: a change makes version 2 and leaves 1 as it was.
    bom = catalog.set_kit_bom(shop, "REPAIR", {"SCREW": 1, "PRY": 1}, "S1")
    assert bom.version == 2
    assert {c.component_id: c.qty for c in catalog.bom_components(line.bom_id)} == {
        "PRY": 2,
        "SCREW": 1,
    }
    stock.build_kit(shop, "REPAIR", 1, "C1")
    assert stock.on_hand("PRY") == 3
    assert verify(shop) == []


def test_unused_bom_version_is_edited_in_place(shop):
    catalog.set_kit_bom(shop, "TRAVEL", {"CHARGER": 1, "CABLE": 2}, "S1")
    assert KitBom.select().where(KitBom.kit == "TRAVEL").count() == 1
    with pytest.raises(LedgerError, match="cannot contain itself"):
        catalog.set_kit_bom(shop, "TRAVEL", {"TRAVEL": 1}, "S1")
    with pytest.raises(LedgerError, match="not a kit"):
        catalog.set_kit_bom(shop, "PEN", {"CABLE": 1}, "S1")
    with pytest.raises(LedgerError, match="itself a kit"):
        catalog.set_kit_bom(shop, "TRAVEL", {"REPAIR": 1}, "S1")


def test_item_changes_are_audited(shop):
    catalog.update_item(shop, "PEN", "S1", price=D("1.59"), name="Pen, blue")
    rows = {a.field: (a.old, a.new, a.staff) for a in Audit.select().where(Audit.subject == "PEN")}
    assert rows == {"price": ("1.49", "1.59", "S1"), "name": ("Pen", "Pen, blue", "S1")}
    with pytest.raises(LedgerError, match="unknown tax category"):
        catalog.update_item(shop, "PEN", "S1", tax_code="Q")
    with pytest.raises(LedgerError, match="finer than the currency"):
        catalog.update_item(shop, "PEN", "S1", price=D("1.599"))


def test_scans_resolve_to_items_and_quantities(shop):
    parse = shop.parser.parse
    case = catalog.resolve_scan(parse("14001234000012"))
    assert (case.item.sku, case.qty) == ("WATER", 6)
    weighed = catalog.resolve_scan(parse("2800123005320"))
    assert (weighed.item.sku, weighed.qty) == ("BANANA", D("0.532"))
    priced = catalog.resolve_scan(parse("2100456004374"))
    assert (priced.item.sku, priced.amount) == ("CHEESE", D("4.37"))
    gs1 = catalog.resolve_scan(parse("]C10100036000291452\x1d10LOT42"))
    assert (gs1.item.sku, gs1.lot) == ("COFFEE", "LOT42")
    assert catalog.resolve_scan(parse("SKUPEN")).item.sku == "PEN"
    with pytest.raises(LedgerError, match="unknown item"):
        catalog.resolve_scan(parse("4001234000107"))
    catalog.update_item(shop, "PEN", "S1", active=False)
    with pytest.raises(LedgerError, match="no longer sold"):
        catalog.resolve_scan(parse("4006381333931"))
    assert [i.sku for i in catalog.search("kit")] == ["REPAIR", "TRAVEL"]
