from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from peewee import IntegrityError

from kiosk.ledger import reports, sales, stock
from kiosk.ledger.core import APPEND_ONLY
from kiosk.ledger.models import Outbox, StockBalance, Txn, TxnLine
from kiosk.ledger.money import Tender as Pay
from kiosk.ledger.sales import ReturnLine, SaleLine
from kiosk.ledger.verify import verify
from tests.conftest import D
from tests.mqtt_env import wait_until


def day_with_room(zone: tzinfo, room_s: float = 60):
    """The date in `zone` once at least `room_s` seconds of it are left (waited for, with
    a deadline), so a busy day posted now lands on that one date even when the test runs
    across midnight there."""

    def room_left():
        now = datetime.now(UTC).astimezone(zone)
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), zone)
        return now.date() if (midnight - now).total_seconds() > room_s else None

    return wait_until(room_left, room_s + 10, 0.5, what="a local day with room for the test")


def local_days(shop) -> set:
    """The local dates of everything posted, from the rows' own UTC times."""
    zone = reports.local_zone()
    return {t.ts.astimezone(zone).date() for t in Txn.select()}


def busy_day(shop):
    a = sales.post_sale(
        shop,
        [SaleLine("PEN", D("2")), SaleLine("COFFEE", discount=D("1.00"))],  # 2.98 + 7.99
        [Pay("cash", D("20.00"))],
    )
    b = sales.post_sale(shop, [SaleLine("CHARGER")], [Pay("card", D("19.99"), "A1")])
    sales.post_return(shop, [ReturnLine("PEN")], "unwanted", "C1", receipt=a.number)
    sales.post_void(shop, b.number, "S1")
    stock.receive(shop, [stock.ReceiveLine("PEN", 10)], "C1")  # not in money totals
    return a, b


def test_z_report_totals(shop):
    day = day_with_room(reports.local_zone())
    busy_day(shop)
    assert local_days(shop) == {day}
    z = reports.z_report(day, opening_float=D("100.00"))
    assert z.counts == {"sale": 2, "return": 1, "void": 1}
    assert z.gross_sales == D("30.96")  # 10.97 + 19.99
    assert z.discounts == D("1.00")
    assert z.returns == D("-1.49")
    assert z.voids == D("-19.99")
    assert z.rounding == D("-0.03")  # cash 10.97 -> 10.95; refund 1.49 -> 1.50
    assert z.net_total == D("9.45")  # 10.95 - 1.50 + 19.99 - 19.99
    assert z.tenders == {"cash": D("9.45")}  # card in and out again: left out
    assert z.cash_expected == D("109.45")
    assert sum(net + tax for _, net, tax in z.taxes.values()) == z.net_total - z.rounding


def test_z_report_uses_the_local_day(shop):
    far_east = timezone(timedelta(hours=14))
    day, far_day = day_with_room(reports.local_zone()), day_with_room(far_east)
    busy_day(shop)
    assert reports.z_report(day + timedelta(days=2)).counts == {}
    assert reports.z_report(far_day, zone=far_east).counts["sale"] == 2
    assert reports.z_report(far_day - timedelta(days=1), zone=far_east).counts == {}


def test_verify_passes_a_busy_ledger(shop):
    busy_day(shop)
    assert verify(shop) == []


def drop_guards(db):
    """What someone editing the file by hand would have to do first."""
    for table in APPEND_ONLY:
        db.execute_sql(f"DROP TRIGGER {table}_no_update")
        db.execute_sql(f"DROP TRIGGER {table}_no_delete")


def test_posted_rows_cannot_be_changed(shop):
    busy_day(shop)
    for sql in (
        "UPDATE txn SET total = '0'",
        "DELETE FROM txn_line",
        "UPDATE tender SET amount = '0'",
        "DELETE FROM stock_move",
    ):
        with pytest.raises(IntegrityError, match="append-only"):
            shop.db.execute_sql(sql)


def test_verify_finds_tampering(shop):
    a, _ = busy_day(shop)
    db = shop.db
    drop_guards(db)
    db.execute_sql("UPDATE stock_balance SET on_hand = on_hand + 1 WHERE sku = 'PEN'")
    db.execute_sql("UPDATE txn_line SET total = '9.99' WHERE txn_id = ? AND line_no = 1", (a.id,))
    db.execute_sql("DELETE FROM outbox WHERE seq = 2")
    problems = verify(shop)
    assert any(p.startswith("stock PEN@main: balance") for p in problems)
    assert any("net" in p and "!= 9.99" in p for p in problems)
    assert any("outbox seq has gaps" in p for p in problems)
    assert any("no stock event in the outbox" in p for p in problems)


def test_verify_finds_over_returns_and_bad_tenders(shop):
    a, _ = busy_day(shop)
    drop_guards(shop.db)
    line = TxnLine.get((TxnLine.txn == a.id) & (TxnLine.line_no == 1))
    ret = Txn.get(Txn.kind == "return")
    shop.db.execute_sql("UPDATE txn_line SET qty = '-5' WHERE txn_id = ?", (ret.id,))
    shop.db.execute_sql("UPDATE tender SET amount = '1.00' WHERE txn_id = ?", (a.id,))
    problems = verify(shop)
    assert any(f"line {line.line_no}: 5 returned of 2" in p for p in problems)
    assert any("tenders 1.00" in p for p in problems)
    assert Outbox.select().count() == 5 and StockBalance.select().count() >= 3
