"""Random sequences of UI actions never crash the checkout and always leave a ledger
that verifies, holding exactly what the checkout announced as posted."""

import itertools
import shutil
import sqlite3

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kiosk.checkout.replay import ReplayClock
from kiosk.checkout.session import Checkout, Outcome
from kiosk.config import parse
from kiosk.drivers.base import MemoryDrawer, MemoryPrinter, PrinterError
from kiosk.ledger import catalog_csv, staff, stock
from kiosk.ledger.core import Ledger
from kiosk.ledger.models import utc_now
from kiosk.ledger.verify import verify
from tests.conftest import CATALOG

CODES = [
    "4006381333931", "14001234000012", "2800123005320", "2100456004374", "4001234000022",
    "4001234000046", "4001234000084", "036000291452", "4006381333932", "garbage", "",
    "SKUCABLE", "STFC1", "STFS1", "RCPtill-01-000001", "]C10100036000291452\x1d10L1",
]  # fmt: skip
RUNS = itertools.count()
AMOUNTS = ["0.01", "1.00", "2.55", "5.00", "20.00", "100.00", "-3", "abc"]


def last_sale(co):
    return co.last_posted.number if co.last_posted else "till-01-000001"


def quick_sale(co):
    if co.role != "self-checkout" and not co.staff:
        co.staff_login("5678")
    co.scan("4006381333931")
    return co.tender_cash("100.00")


ACTIONS = st.one_of(
    st.just(("quick_sale", quick_sale)),
    st.just(("quick_sale", quick_sale)),
    st.sampled_from(CODES).map(lambda c: ("scan", lambda co: co.scan(c))),
    st.sampled_from(["1", "2", "0", "2.5", "x"]).map(lambda q: ("qty", lambda co: co.quantity(q))),
    st.integers(1, 4).map(lambda n: ("remove", lambda co: co.remove_line(n))),
    st.just(("pay", lambda co: co.pay())),
    st.sampled_from(AMOUNTS).map(lambda a: ("cash", lambda co: co.tender_cash(a))),
    st.sampled_from([*AMOUNTS, None]).map(lambda a: ("card", lambda co: co.tender_card(a, "R1"))),
    st.just(("cancel_payment", lambda co: co.cancel_payment())),
    st.just(("cancel", lambda co: co.cancel())),
    st.booleans().map(lambda p: ("receipt", lambda co: co.choose_receipt(p))),
    st.sampled_from(["1234", "5678", "0000"]).map(
        lambda pin: ("login", lambda co: co.staff_login(pin))
    ),
    st.just(("logout", lambda co: co.staff_logout())),
    st.just(("help", lambda co: co.call_staff())),
    st.just(("approve", lambda co: co.approve())),
    st.sampled_from(["10", "60"]).map(
        lambda p: ("discount", lambda co: co.discount(None, percent=p))
    ),
    st.just(("return", lambda co: co.start_return(last_sale(co)))),
    st.sampled_from(["PEN", "WATER", "CHARGER"]).map(
        lambda s: ("return_item", lambda co: co.return_item(s))
    ),
    st.just(("finish_return", lambda co: co.finish_return("unwanted"))),
    st.just(("exchange", lambda co: co.exchange_item("4006381333931"))),
    st.just(("void", lambda co: co.void(last_sale(co)))),
    st.just(("count", lambda co: co.start_count())),
    st.just(("finish_count", lambda co: co.finish_count())),
    st.just(("menu", lambda co: co.staff_menu())),
    st.just(("printer_fault", "fault")),
    st.just(("idle", "idle")),
)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "ledger.db"
    config = parse(f'[device]\nid = "till-01"\n[ledger]\npath = "{path}"\n')
    with Ledger.open(config) as ledger:
        catalog_csv.import_text(ledger, CATALOG)
        staff.add(ledger, "S1", "Sam", "supervisor", "1234", by=None)
        staff.add(ledger, "C1", "Cat", "cashier", "5678", by=None)
        stock.receive(ledger, [stock.ReceiveLine("PEN", 50)], "S1")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.sampled_from(["self-checkout", "staffed", "mobile-cart"]),
    st.lists(ACTIONS, min_size=1, max_size=40),
)
def test_random_sessions_leave_a_ledger_that_verifies(template, tmp_path, role, actions):
    # A fresh file per example: one named after the actions was reused by repeated
    # examples, and a -wal left behind by an earlier one came back with the copy.
    path = tmp_path / f"run-{next(RUNS)}.db"
    shutil.copy(template, path)
    config = parse(
        f'[device]\nid = "till-01"\nrole = "{role}"\n[ledger]\npath = "{path}"\n'
        "[checkout]\ncart_tendering = true\n"
    )
    with Ledger.open(config) as ledger:
        clock = ReplayClock(utc_now)
        printer = MemoryPrinter()
        co = Checkout(ledger, printer, MemoryDrawer(), clock)
        announced: list[dict] = []
        co.subscribe(lambda e: announced.append(e.detail) if e.kind == "posted" else None)
        paid = 0  # quick sales the checkout said it recorded
        for name, act in actions:
            if act == "fault":
                printer.fail_with = None if printer.fail_with else PrinterError("paper out")
                continue
            if act == "idle":
                clock.advance(300)
                co.tick()
                continue
            before = len(announced)
            outcome = act(co)
            assert isinstance(outcome, Outcome), name
            assert outcome.message
            if name == "quick_sale" and outcome.ok and "Receipt" in outcome.message:
                paid += 1
                # The sale the checkout announced is in the ledger, as announced.
                assert len(announced) == before + 1
                number = announced[-1]["receipt"]
                assert outcome.message.endswith(f"Receipt {number}")
        assert verify(ledger) == []
        # Everything announced as posted is in the ledger with its total, nothing else is,
        # and each posting left exactly one stock event in the outbox.
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT number, total FROM txn WHERE id > 1 ORDER BY id").fetchall()
            events = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        assert [(d["receipt"], d["total"]) for d in announced] == rows
        assert events == len(rows) + 1  # and the template's receiving
        assert len(rows) >= paid
        event("posted something" if rows else "posted nothing")
        event(f"quick sales paid: {min(paid, 3)}{'+' if paid > 3 else ''}")
        snap = co.snapshot()
        assert snap["state"] == co.state.value
    for leftover in tmp_path.glob(f"{path.name}*"):
        leftover.unlink()
