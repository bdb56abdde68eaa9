"""Checkout flows, each as a replay scenario (the format the app logs), plus ledger checks."""

import json

import pytest

from kiosk.checkout.replay import (
    ExpectationFailed,
    ReplayClock,
    ReplayError,
    SessionLog,
    replay,
)
from kiosk.checkout.session import Checkout, State
from kiosk.documents import KitLabel, Receipt, TextReport
from kiosk.drivers.base import DrawerError, MemoryDrawer, MemoryPrinter
from kiosk.ledger import stock
from kiosk.ledger.core import Ledger
from kiosk.ledger.models import Audit, Outbox, PrintJob, Txn, utc_now
from kiosk.ledger.verify import verify
from tests.conftest import D


def with_role(ledger: Ledger, role: str, **checkout) -> Ledger:
    config = ledger.config.replace(
        device=ledger.config.device.replace(role=role),
        checkout=ledger.config.checkout.replace(**checkout),
    )
    return Ledger(ledger.db, config, ledger.policy, ledger.parser)


@pytest.fixture
def stocked(shop):
    stock.receive(
        shop,
        [stock.ReceiveLine(s, 20) for s in ("PEN", "WATER", "CHARGER", "CABLE", "SCREW", "PRY")],
        "S1",
    )
    return shop


def run(ledger, script, role="self-checkout", **options):
    clock = ReplayClock(utc_now)
    co = Checkout(with_role(ledger, role, **options), MemoryPrinter(), MemoryDrawer(), clock)
    co.events = []
    co.subscribe(co.events.append)
    replay(co, script.strip().splitlines(), clock)
    return co


def test_cash_sale_at_the_self_checkout(stocked):
    co = run(
        stocked,
        """
        {"expect": {"state": "attract"}}
        {"scan": "4006381333931"}
        {"scan": "4006381333931"}
        {"expect": {"state": "scanning", "lines": 1, "total": "2.98"}}
        {"qty": "3"}
        {"expect": {"total": "4.47"}}
        {"scan": "14001234000012"}
        {"expect": {"lines": 2, "total": "9.21"}}
        {"pay": "start"}
        {"expect": {"state": "paying", "due": "9.21"}}
        {"pay": {"cash": "5.00"}}
        {"expect": {"ok": true, "message": "still to pay: 4.20"}}
        {"pay": {"cash": "10.00"}}
        {"expect": {"state": "receipt", "message": "change: 5.80"}}
        {"receipt": "print"}
        {"expect": {"state": "attract"}}
        """,
    )
    assert co.drawer.opened == 1
    (receipt,) = co.printer.printed
    assert isinstance(receipt, Receipt) and receipt.total == D("9.21")
    assert receipt.change == D("5.80") and receipt.rounding == D("-0.01")
    assert stock.on_hand("PEN") == 17 and stock.on_hand("WATER") == 14
    kinds = [e.kind for e in co.events]
    assert "cart" in kinds and "posted" in kinds and "drawer" in kinds and "printed" in kinds
    assert verify(stocked) == []


def test_card_and_split_tenders(stocked):
    co = run(
        stocked,
        """
        {"scan": "4001234000022"}
        {"pay": {"card": "5.00"}}
        {"expect": {"ok": false, "message": "approval reference"}}
        {"pay": {"card": "25.00", "ref": "A1"}}
        {"expect": {"ok": false, "message": "cannot pay more"}}
        {"pay": {"card": "10.00", "ref": "A1"}}
        {"pay": {"card": null, "ref": "A2"}}
        {"expect": {"state": "receipt"}}
        {"receipt": "none"}
        """,
    )
    assert co.drawer.opened == 0 and co.printer.printed == []
    txn = Txn.get(Txn.kind == "sale")
    assert sorted((t.kind, t.amount, t.reference) for t in txn.tenders) == [
        ("card", D("9.99"), "A2"),
        ("card", D("10.00"), "A1"),
    ]


def test_weighed_priced_and_gs1_items(stocked):
    co = run(
        stocked,
        """
        {"scan": "2800123005320"}
        {"scan": "2800123005320"}
        {"expect": {"lines": 2}}
        {"scan": "2100456004374"}
        {"scan": "]C10100036000291452\\u001d10LOT42"}
        {"expect": {"lines": 4, "total": "15.48"}}
        """,
    )
    assert [li.sku for li in co.cart.lines] == ["BANANA", "BANANA", "CHEESE", "COFFEE"]
    assert co.cart.lines[3].lot == "LOT42"


def test_bad_and_unknown_barcodes_never_dead_end(stocked):
    co = run(
        stocked,
        """
        {"scan": "4006381333932"}
        {"expect": {"ok": false, "state": "attract", "message": "bad check digit"}}
        {"scan": "4001234000107"}
        {"expect": {"ok": false, "message": "look it up by name or call staff"}}
        {"scan": "\\u0007\\u0007garbage"}
        {"expect": {"ok": false, "message": "control characters"}}
        {"lookup": "coff"}
        {"expect": {"ok": true}}
        {"add": {"sku": "COFFEE"}}
        {"expect": {"state": "scanning", "total": "8.99"}}
        {"lookup": "zzz"}
        {"expect": {"ok": false, "message": "call staff"}}
        {"help": true}
        {"expect": {"state": "help"}}
        {"staff": "5678"}
        {"expect": {"state": "scanning", "staff": "C1"}}
        """,
    )
    assert co.alerts == ["Customer asks for help"]


def test_removing_a_line_needs_staff_at_the_self_checkout(stocked):
    co = run(
        stocked,
        """
        {"scan": "4006381333931"}
        {"scan": "4001234000022"}
        {"remove": 2}
        {"expect": {"ok": false, "state": "help", "lines": 2}}
        {"staff": "5678"}
        {"expect": {"ok": true, "state": "scanning", "lines": 1, "total": "1.49"}}
        {"set_qty": {"line": 1, "qty": "3"}}
        {"logout": true}
        {"set_qty": {"line": 1, "qty": "2"}}
        {"expect": {"ok": false, "state": "help"}}
        {"staff": {"code": "C1"}}
        {"expect": {"total": "2.98"}}
        """,
    )
    removal = Audit.get(Audit.action == "line_removed")
    assert (removal.staff, removal.subject) == ("C1", "CHARGER")
    assert co.snapshot()["lines"][0]["qty"] == "2"


def test_age_restricted_items_wait_for_a_staff_check(stocked):
    run(
        stocked,
        """
        {"scan": "4001234000084"}
        {"expect": {"message": "age 18+"}}
        {"pay": {"cash": "10.00"}}
        {"expect": {"ok": false, "state": "help"}}
        {"staff": "1234"}
        {"expect": {"message": "age check done", "state": "scanning"}}
        {"pay": {"cash": "10.00"}}
        {"expect": {"state": "receipt"}}
        """,
    )
    assert Audit.get(Audit.action == "age_check").staff == "S1"


def test_price_override_and_discount_thresholds(stocked):
    run(
        stocked,
        """
        {"staff": "5678"}
        {"scan": "4001234000022"}
        {"override": {"line": 1, "price": "18.99"}}
        {"expect": {"ok": true, "total": "18.99"}}
        {"override": {"line": 1, "price": "9.99"}}
        {"expect": {"ok": false, "state": "help", "message": "needs staff"}}
        {"staff": "1234"}
        {"expect": {"ok": true, "total": "9.99", "state": "scanning"}}
        {"scan": "4006381333931"}
        {"discount": {"line": 2, "amount": "0.10"}}
        {"expect": {"ok": true, "total": "11.38"}}
        {"discount": {"percent": "50"}}
        {"expect": {"ok": true, "total": "5.73"}}
        """,
        role="staffed",
    )
    override = Audit.get(Audit.action == "approval")
    assert override.staff == "S1"


def test_cashier_over_the_discount_limit_needs_a_supervisor(stocked):
    run(
        stocked,
        """
        {"staff": "5678"}
        {"scan": "4001234000022"}
        {"discount": {"percent": "25"}}
        {"expect": {"ok": false, "state": "help", "total": "19.99"}}
        {"staff": "5678"}
        {"expect": {"ok": false, "message": "needs a supervisor"}}
        """,
        role="staffed",
    )


def test_cancelling_before_the_commit_leaves_no_trace(stocked):
    co = run(
        stocked,
        """
        {"scan": "4001234000022"}
        {"pay": {"card": "5.00", "ref": "X9"}}
        {"cancel": true}
        {"expect": {"ok": false, "message": "cancel the payment first"}}
        {"pay": "cancel"}
        {"expect": {"state": "scanning", "message": "reverse card payment"}}
        {"cancel": true}
        {"expect": {"state": "attract", "lines": 0}}
        """,
    )
    assert stock.on_hand("CHARGER") == 20
    assert not Txn.select().where(Txn.kind == "sale").exists()
    abandoned = Audit.get(Audit.action == "abandoned_cart")
    assert json.loads(abandoned.detail)["lines"] == [{"sku": "CHARGER", "qty": "1"}]
    assert any("X9" in alert for alert in co.alerts)


def test_idle_timeouts(stocked):
    run(
        stocked,
        """
        {"scan": "4006381333931"}
        {"idle": 60}
        {"expect": {"state": "scanning"}}
        {"idle": 121}
        {"expect": {"state": "attract", "lines": 0}}
        {"scan": "4006381333931"}
        {"pay": {"cash": "2.00"}}
        {"expect": {"state": "receipt"}}
        {"idle": 25}
        {"expect": {"state": "attract"}}
        {"staff": "1234"}
        {"idle": 200}
        {"expect": {"state": "attract", "staff": null}}
        """,
    )
    assert Audit.get(Audit.action == "abandoned_cart").detail.startswith('{"why": "idle timeout"')


def test_a_printer_fault_never_undoes_the_sale(stocked):
    co = run(
        stocked,
        """
        {"printer": "paper_out"}
        {"scan": "4006381333931"}
        {"pay": {"cash": "2.00"}}
        {"receipt": "print"}
        {"expect": {"ok": false, "state": "attract", "message": "your purchase is complete"}}
        {"staff": "5678"}
        {"reprint": "failed"}
        {"expect": {"ok": false, "message": "still queued"}}
        {"printer": "ok"}
        {"reprint": "failed"}
        {"expect": {"ok": true, "message": "reprinted 1"}}
        {"reprint": true}
        {"expect": {"ok": true}}
        """,
    )
    assert Txn.select().where(Txn.kind == "sale").count() == 1
    assert any("queued for reprint" in a for a in co.alerts)
    assert [r.reprint for r in co.printer.printed] == [True, True]
    assert PrintJob.select().where(PrintJob.state != "printed").count() == 0


def test_a_drawer_fault_is_an_alert(stocked):
    drawer = MemoryDrawer()
    drawer.fail_with = DrawerError("GPIO 17 busy")
    clock = ReplayClock(utc_now)
    co = Checkout(stocked, MemoryPrinter(), drawer, clock)
    co.scan("4006381333931")
    outcome = co.tender_cash("5.00")
    assert outcome.ok and co.state == State.RECEIPT
    assert co.alerts == ["Cash drawer did not open: GPIO 17 busy"]


def test_staff_badges_pins_and_lockout(stocked):
    run(
        stocked,
        """
        {"scan": "STFS1"}
        {"expect": {"staff": "S1", "state": "staff_menu"}}
        {"logout": true}
        {"staff": "0000"}
        {"expect": {"ok": false, "message": "wrong PIN"}}
        {"staff": {"code": "C1", "pin": "0000"}}
        {"staff": {"code": "C1", "pin": "0000"}}
        {"staff": {"code": "C1", "pin": "0000"}}
        {"staff": {"code": "C1", "pin": "0000"}}
        {"staff": {"code": "C1", "pin": "5678"}}
        {"expect": {"ok": false, "message": "locked out"}}
        {"scan": "STFNOBODY"}
        {"expect": {"ok": false, "message": "unknown or inactive"}}
        """,
    )


def test_staffed_till_and_mobile_cart_roles(stocked):
    run(
        stocked,
        """
        {"scan": "4006381333931"}
        {"expect": {"ok": false, "message": "staff login needed"}}
        {"staff": "5678"}
        {"scan": "4006381333931"}
        {"scan": "4001234000084"}
        {"pay": "start"}
        {"expect": {"ok": false, "message": "check the customer's age"}}
        {"approve": true}
        {"pay": {"cash": "10.00"}}
        {"expect": {"state": "receipt"}}
        {"receipt": "none"}
        {"expect": {"state": "scanning", "staff": "C1"}}
        """,
        role="staffed",
    )
    run(
        stocked,
        """
        {"staff": "5678"}
        {"scan": "4006381333931"}
        {"expect": {"ok": false, "message": "does not sell"}}
        {"lookup": "pen"}
        {"expect": {"ok": true}}
        {"count": {"PEN": 15}}
        {"expect": {"ok": true, "state": "staff_menu"}}
        """,
        role="mobile-cart",
    )
    assert stock.on_hand("PEN") == 15
    run(
        stocked,
        """
        {"staff": "5678"}
        {"scan": "4006381333931"}
        {"pay": {"card": null, "ref": "M1"}}
        {"expect": {"state": "receipt"}}
        """,
        role="mobile-cart",
        cart_tendering=True,
    )


def test_return_by_receipt_scan(stocked):
    co = run(
        stocked,
        """
        {"scan": "4006381333931"}
        {"scan": "4006381333931"}
        {"pay": {"cash": "5.00"}}
        {"receipt": "none"}
        {"scan": "RCP{last_sale}"}
        {"expect": {"ok": false, "message": "returns are done by staff"}}
        {"staff": "5678"}
        {"scan": "RCP{last_sale}"}
        {"expect": {"state": "returning"}}
        {"scan": "4006381333931"}
        {"return_item": {"sku": "PEN", "qty": "5"}}
        {"expect": {"ok": false, "message": "can still be returned"}}
        {"scan": "4001234000022"}
        {"expect": {"ok": false, "message": "not on receipt"}}
        {"finish": "return", "reason": "unwanted"}
        {"expect": {"ok": true, "state": "staff_menu", "message": "refund 1.50"}}
        """,
    )
    ret = Txn.get(Txn.kind == "return")
    assert [(t.kind, t.amount) for t in ret.tenders] == [("cash", D("-1.50"))]
    assert co.drawer.opened == 2  # the sale and the refund
    assert isinstance(co.printer.printed[-1], Receipt) and co.printer.printed[-1].kind == "return"
    assert stock.on_hand("PEN") == 19


def test_post_void_needs_a_supervisor(stocked):
    run(
        stocked,
        """
        {"scan": "4001234000022"}
        {"pay": {"card": null, "ref": "V1"}}
        {"receipt": "none"}
        {"staff": "5678"}
        {"void": {"receipt": "{last_sale}"}}
        {"expect": {"ok": false, "message": "needs a supervisor"}}
        {"logout": true}
        {"staff": "1234"}
        {"void": {"receipt": "{last_sale}", "reason": "customer changed mind"}}
        {"expect": {"ok": true, "message": "refund 19.99"}}
        {"void": {"receipt": "{last_sale}"}}
        {"expect": {"ok": false, "message": "was voided"}}
        """,
    )
    assert stock.on_hand("CHARGER") == 20


def test_exchanges_pay_or_refund_the_difference(stocked):
    run(
        stocked,
        """
        {"staff": "5678"}
        {"scan": "4001234000039"}
        {"pay": {"cash": "10.00"}}
        {"receipt": "none"}
        {"return": {"receipt": "{last_sale}", "lines": [{"sku": "CABLE"}], "exchange": ["4001234000022"], "reason": "wrong_item"}}
        {"expect": {"ok": true, "state": "paying", "message": "customer pays 10.00"}}
        {"pay": {"cash": "10.00"}}
        {"expect": {"state": "receipt"}}
        {"receipt": "print"}
        {"menu": true}
        {"return": {"receipt": "{last_sale}", "lines": [{"sku": "CHARGER"}], "exchange": ["4006381333931"]}}
        {"expect": {"ok": true, "state": "staff_menu"}}
        """,
        role="staffed",
    )
    swaps = list(Txn.select().where(Txn.kind == "exchange").order_by(Txn.id))
    assert [t.total for t in swaps] == [D("10.00"), D("-18.50")]
    assert stock.on_hand("CABLE") == 20 and stock.on_hand("CHARGER") == 20
    assert stock.on_hand("PEN") == 19
    assert verify(stocked) == []


def test_count_receiving_and_kit_sessions(stocked):
    co = run(
        stocked,
        """
        {"staff": "5678"}
        {"start": "count"}
        {"scan": "4006381333931"}
        {"scan": "4006381333931"}
        {"scan": "14001234000012"}
        {"set_count": {"sku": "CABLE", "qty": 18}}
        {"finish": "count"}
        {"expect": {"ok": true, "message": "3 item(s)"}}
        {"start": "receiving", "reference": "DN-9"}
        {"scan": "14001234000012"}
        {"scan": "14001234000012"}
        {"receive_item": {"sku": "PEN", "qty": 10}}
        {"finish": "receiving"}
        {"expect": {"ok": true, "message": "22 unit(s)"}}
        {"kit": {"sku": "REPAIR", "qty": 50}}
        {"expect": {"ok": false, "message": "not enough components"}}
        {"start": "kit", "sku": "REPAIR"}
        {"build": {"qty": 2, "lot": "K7"}}
        {"expect": {"ok": true, "message": "2 label(s) printed"}}
        """,
    )
    assert stock.on_hand("PEN") == 12 and stock.on_hand("WATER") == 18
    assert stock.on_hand("CABLE") == 18
    assert stock.on_hand("REPAIR") == 2 and stock.on_hand("PRY") == 16
    labels = [d for d in co.printer.printed if isinstance(d, KitLabel)]
    assert len(labels) == 2 and labels[0].lot == "K7" and labels[0].bom_version == 1
    count = json.loads(Outbox.get(Outbox.kind == "count").payload)
    assert count["counted"] == {"CABLE": 18, "PEN": 2, "WATER": 6}


def test_supervisor_can_force_a_kit_build_and_print_the_z_report(stocked):
    co = run(
        stocked,
        """
        {"staff": "5678"}
        {"report": "z"}
        {"expect": {"ok": false, "message": "needs a supervisor"}}
        {"logout": true}
        {"staff": "1234"}
        {"start": "kit", "sku": "REPAIR"}
        {"build": {"qty": 15, "force": true}}
        {"expect": {"ok": true}}
        {"report": "z", "float": "50.00"}
        {"expect": {"ok": true, "message": "cash expected 50.00"}}
        """,
    )
    assert stock.on_hand("PRY") == -10
    assert isinstance(co.printer.printed[-1], TextReport)


def test_bad_replay_lines_name_their_number(stocked):
    co = Checkout(stocked)
    for script, message in [
        ('{"scan": "1"}\nnot json', "line 2: not JSON"),
        ('{"dance": true}', "line 1: expected one known action, got dance"),
        ('{"scan": "1", "pay": "start"}', "line 1: expected one known action"),
        ("[1, 2]", "line 1: expected a JSON object"),
        ('{"pay": "later"}', "line 1: pay: pay expects"),
        ('{"set_qty": {"line": "x", "qty": 1}}', "line 1: set_qty: bad value"),
        ('{"expect": {"colour": "red"}}', "line 1: cannot expect 'colour'"),
    ]:
        with pytest.raises(ReplayError, match=message):
            replay(co, script.splitlines())
    with pytest.raises(ExpectationFailed, match="line 2: expected state 'paying'"):
        replay(co, ['{"scan": "4006381333931"}', '{"expect": {"state": "paying"}}'])


def test_a_logged_session_replays_to_the_same_ledger(stocked, tmp_path, config):
    log_path = tmp_path / "session.jsonl"
    log = SessionLog(log_path)
    co = Checkout(stocked, MemoryPrinter(), MemoryDrawer(), log=log)
    co.scan("4006381333931")
    co.scan("2800123005320")
    co.staff_login("5678")
    co.discount(1, percent="10")
    co.tender_card("1.00", "L1")
    co.tender_cash("5.00")
    co.choose_receipt(True)
    log.close()
    lines = log_path.read_text().splitlines()
    assert "5678" not in "".join(lines)  # PINs are never logged
    assert json.loads(lines[2]) == {"staff": {"code": "C1"}}
    first = Txn.get(Txn.kind == "sale")
    again = Checkout(stocked, MemoryPrinter(), MemoryDrawer())
    replay(again, lines)
    second = Txn.select().where(Txn.kind == "sale").order_by(Txn.id.desc()).first()
    assert second.id != first.id
    assert (second.total, second.rounding, second.change) == (
        first.total,
        first.rounding,
        first.change,
    )


def test_the_app_worker_logs_what_each_scan_did(stocked, caplog):
    """The journal on a device shows every scan and its outcome (field support)."""
    import threading

    from kiosk.screens.worker import CheckoutWorker

    done = threading.Event()
    worker = CheckoutWorker(Checkout(stocked, MemoryPrinter(), MemoryDrawer()), lambda f: f())
    with caplog.at_level("INFO", logger="kiosk.screens.worker"):
        worker.call("scan", "4006381333931")
        worker.call("scan", "4006381333948")
        worker.call("staff_login", "5678", then=lambda *_: done.set())
        assert done.wait(10)
    worker.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "kiosk.screens.worker"]
    assert lines[0].startswith("scan 4006381333931: ") and "total" in lines[0]
    assert lines[1].startswith("scan 4006381333948: ") and "nknown" in lines[1]
    assert len(lines) == 2 and "5678" not in caplog.text  # only scans, never a PIN
