"""Card refunds, the terminal's end of day and unsettled payments, through the real
ZVT driver to the simulated terminal on loopback: a return, exchange or post-void of
a card sale pays the card part back at the terminal (a reversal the same day, a
refund otherwise), journaled first; declines leave the posting undone (cash instead
needs a supervisor); a lost answer is asked for and never refunded twice; a power
cut between the terminal's approval and the commit is posted on restart."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from decimal import Decimal

import pytest
from click.testing import CliRunner

from kiosk.checkout.session import Checkout, State
from kiosk.cli import cli
from kiosk.demo.terminal import TerminalSimulator
from kiosk.documents import TextReport
from kiosk.drivers.base import MemoryPrinter
from kiosk.drivers.payment import TerminalResult
from kiosk.drivers.zvt.driver import ZvtTerminal
from kiosk.drivers.zvt.transport import TcpLink
from kiosk.ledger import payments
from kiosk.ledger.core import Ledger
from kiosk.ledger.migrations import LATEST
from kiosk.ledger.models import Audit, Payment, Txn
from kiosk.ledger.verify import verify

PEN = "4006381333931"  # 1.49
CABLE = "4001234000039"  # 9.99
CHARGER = "4001234000022"  # 19.99


@pytest.fixture
def sim():
    simulator = TerminalSimulator().start()
    yield simulator
    simulator.stop()


def terminal_for(sim) -> ZvtTerminal:
    return ZvtTerminal(TcpLink("127.0.0.1", sim.port, 2.0), idle_timeout=10.0)


@pytest.fixture
def co(shop, sim):
    checkout = Checkout(shop, MemoryPrinter(), terminal=terminal_for(sim))
    yield checkout
    checkout.terminal.close()


def card_sale(co: Checkout, *codes: str) -> str:
    for code in codes:
        assert co.scan(code).ok
    assert co.tender_card().ok
    outcome = co.terminal_wait()
    assert outcome.ok and co.state == State.RECEIPT, outcome.message
    number = co.last_posted.number
    co.choose_receipt(False)
    return number


def journal() -> list[tuple[str, str, str]]:
    return [(p.kind, p.state, str(p.amount)) for p in Payment.select().order_by(Payment.id)]


def tenders_of(number: str) -> list[tuple[str, Decimal, str | None]]:
    txn = Txn.get(Txn.number == number)
    return [(t.kind, t.amount, t.reference) for t in txn.tenders]


def do_return(co: Checkout, receipt: str, *lines: tuple[str, str]) -> object:
    assert co.start_return(receipt).ok
    for sku, qty in lines:
        assert co.return_item(sku, qty).ok
    return co.finish_return("unwanted")


def test_a_whole_card_payment_returned_the_same_day_is_reversed(co, sim):
    sale = card_sale(co, PEN, PEN)
    co.staff_login("5678")
    started = do_return(co, sale, ("PEN", "2"))
    assert started.ok and "cancelling the card payment" in started.message
    assert co.state == State.RETURNING and Txn.select().count() == 1  # nothing posted yet
    done = co.terminal_wait()
    assert done.ok and co.state == State.STAFF_MENU, done.message
    assert "0630" in sim.commands and sim.approved() == []  # reversed on the terminal
    refund = co.last_posted.number
    reversal = Payment.get(Payment.kind == "reversal")
    assert journal() == [("authorize", "committed", "2.98"), ("reversal", "committed", "2.98")]
    assert (reversal.txn, reversal.original.id) == (
        refund,
        Payment.get(Payment.kind == "authorize").id,
    )
    assert tenders_of(refund) == [("card", Decimal("-2.98"), reversal.reference)]
    assert reversal.reference.startswith("T29001006 R0002")
    assert verify(co.ledger) == []


def test_part_of_a_card_payment_is_refunded_and_never_twice(co, sim):
    sale = card_sale(co, PEN, PEN)
    co.staff_login("5678")
    assert "presents the card" in do_return(co, sale, ("PEN", "1")).message
    assert co.terminal_wait().ok
    assert do_return(co, sale, ("PEN", "1")).ok and co.terminal_wait().ok
    refunds = [t.amount for t in sim.journal if t.kind == "refund" and t.result == 0]
    assert refunds == [149, 149]  # the whole 2.98 back, in two refunds
    refused = co.start_return(sale) and co.return_item("PEN", "1")
    assert not refused.ok and "can still be returned" in refused.message
    assert len([t for t in sim.journal if t.kind == "refund"]) == 2  # nothing more sent
    assert [s for k, s, _ in journal() if k == "refund"] == ["committed", "committed"]
    assert verify(co.ledger) == []


def test_the_refund_order_card_first_then_cash(co, sim):
    co.scan(CABLE)  # 9.99: 5.00 by card, the rest in cash
    assert co.tender_card("5.00").ok and co.terminal_wait().ok
    co.tender_cash("5.00")
    sale = co.last_posted.number
    co.choose_receipt(False)
    co.staff_login("5678")
    do_return(co, sale, ("CABLE", "1"))
    assert co.terminal_wait().ok
    kinds = [(k, a) for k, a, _ in tenders_of(co.last_posted.number)]
    assert kinds == [("card", Decimal("-5.00")), ("cash", Decimal("-5.00"))]  # 4.99 rounded
    assert sim.approved() == []  # the whole card payment: reversed the same day


def test_a_declined_refund_leaves_the_return_unposted_and_cash_needs_a_supervisor(co, sim):
    sale = card_sale(co, PEN, PEN)
    co.staff_login("5678")
    sim.plan_refund("decline")  # the reversal is refused; the refund that follows too
    sim.plan_refund("decline")
    do_return(co, sale, ("PEN", "2"))
    outcome = co.terminal_wait()
    assert not outcome.ok and "not posted" in outcome.message and "cash" in outcome.message
    assert co.state == State.RETURNING and Txn.select().count() == 1
    assert co.snapshot()["refund"]["card"] == [{"amount": "2.98", "done": False}]
    assert [s for _, s, _ in journal()] == ["committed", "declined", "declined"]
    asked = co.refund_cash()  # a cashier may not
    assert not asked.ok and "needs staff" in asked.message and co.state == State.HELP
    assert "needs supervisor approval" in co.alerts[-1]
    done = co.staff_login("1234")
    assert done.ok and co.state == State.STAFF_MENU, done.message
    assert tenders_of(co.last_posted.number) == [("cash", Decimal("-3.00"), None)]
    assert co.refunding is None and co.drawer.opened  # cash out of the drawer
    assert Audit.get(Audit.action == "refund_cash").new == "3.00"
    assert [t.amount for t in sim.approved()] == [298]  # the card kept its payment
    assert verify(co.ledger) == []


def test_a_declined_refund_can_be_tried_again(co, sim):
    sale = card_sale(co, CABLE)
    co.staff_login("5678")
    sim.plan_refund("not_possible", "abort")  # reversal impossible; the customer stops
    do_return(co, sale, ("CABLE", "1"))
    outcome = co.terminal_wait()
    assert not outcome.ok and "cancelled" in outcome.message
    assert co.retry_refund().ok and co.terminal_wait().ok
    assert co.state == State.STAFF_MENU and co.refunding is None
    assert [k for k, *_ in journal()] == ["authorize", "reversal", "refund", "refund"]
    assert [s for _, s, _ in journal()][1:] == ["declined", "aborted", "committed"]


def test_a_lost_refund_answer_is_asked_for_and_never_refunded_twice(co, sim):
    sale = card_sale(co, PEN, PEN)
    co.staff_login("5678")
    sim.plan_refund("drop_after_approval")
    do_return(co, sale, ("PEN", "1"))
    outcome = co.terminal_wait()  # unknown -> repeat receipt -> it was given
    assert outcome.ok and co.state == State.STAFF_MENU, outcome.message
    assert any("answer was lost" in a for a in co.alerts)
    assert [t.amount for t in sim.journal if t.kind == "refund"] == [149]
    assert journal()[1] == ("refund", "committed", "1.49")
    assert verify(co.ledger) == []


def test_an_exchange_refund_and_a_post_void_go_back_to_the_card(co, sim):
    sale = card_sale(co, CHARGER)  # 19.99
    co.staff_login("5678")
    assert co.start_return(sale).ok and co.return_item("CHARGER", "1").ok
    assert co.exchange_item(CABLE).ok  # 9.99 goes out instead: 10.00 back
    assert co.finish_return("wrong_item").ok
    assert co.terminal_wait().ok and co.state == State.STAFF_MENU
    swap = co.last_posted
    assert swap.kind == "exchange"
    assert [(k, a) for k, a, _ in tenders_of(swap.number)] == [("card", Decimal("-10.00"))]
    assert [t.amount for t in sim.journal if t.kind == "refund"] == [1000]
    co.staff_logout()
    sale2 = card_sale(co, PEN)
    co.staff_login("1234")
    assert co.void(sale2).ok and co.terminal_wait().ok
    void = co.last_posted
    assert void.kind == "void" and tenders_of(void.number)[0][:2] == ("card", Decimal("-1.49"))
    assert [t.amount for t in sim.approved()] == [1999]  # the pen's payment reversed
    assert verify(co.ledger) == []


CHILD = """
import os, sys
from kiosk.config import parse
from kiosk.checkout.session import Checkout
from kiosk.drivers.base import MemoryPrinter
from kiosk.drivers.payment import TerminalResult
from kiosk.drivers.zvt.driver import ZvtTerminal
from kiosk.drivers.zvt.transport import TcpLink
from kiosk.ledger import payments, sales
from kiosk.ledger.core import Ledger

path, port, sale, moment = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
config = parse(f'[device]\\nid = "till-01"\\n[ledger]\\npath = "{path}"\\n')
ledger = Ledger.open(config)
def power_cut(*args, **kw):
    os._exit(9)
if moment == "commit":
    sales.post_return = power_cut  # the terminal refunded; the return never written
else:
    payments.record_outcome = power_cut  # the terminal refunded; the kiosk never heard
co = Checkout(ledger, MemoryPrinter(), terminal=ZvtTerminal(TcpLink("127.0.0.1", port)))
co.staff_login("5678")
co.start_return(sale)
co.return_item("PEN", "1")
co.finish_return("defective")
co.terminal_wait()
print("no power cut?")
"""


@pytest.mark.parametrize("moment", ["commit", "outcome"])
def test_a_power_cut_between_refund_and_commit_is_posted_on_restart(shop, sim, moment):
    co = Checkout(shop, MemoryPrinter(), terminal=terminal_for(sim))
    sale = card_sale(co, PEN, PEN)
    co.terminal.close()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(shop.path), str(sim.port), sale, moment],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert child.returncode == 9, child.stdout + child.stderr
    assert [t.amount for t in sim.journal if t.kind == "refund"] == [149]  # money given
    assert journal()[1][:2] == ("refund", "approved" if moment == "commit" else "requested")
    assert Txn.select().where(Txn.kind == "return").count() == 0
    again = Checkout(shop, MemoryPrinter(), terminal=terminal_for(sim))
    assert again.recover_payments().ok
    assert again.terminal_wait().ok
    (back,) = Txn.select().where(Txn.kind == "return")
    assert back.reason == "defective" and back.staff == "C1" and back.total == Decimal("-1.49")
    assert journal()[1] == ("refund", "committed", "1.49")
    assert Payment.get_by_id(journal_ids()[1]).txn == back.number
    assert any("given before a restart" in a and back.number in a for a in again.alerts)
    assert [t.amount for t in sim.journal if t.kind == "refund"] == [149]  # not twice
    assert payments.unsettled() == [] and verify(shop) == []
    again.terminal.close()


def journal_ids() -> list[int]:
    return [p.id for p in Payment.select().order_by(Payment.id)]


def test_end_of_day_runs_the_terminal_and_prints_its_totals_with_ours(co, sim):
    card_sale(co, PEN)
    co.staff_login("1234")
    z = co.end_of_day("50.00")
    assert z.ok and "closing its day" in z.message and z.data["lines"]
    assert isinstance(co.printer.printed[-1], TextReport)  # ours first, at once
    done = co.terminal_wait()
    assert done.ok, done.message
    slip = co.printer.printed[-1].lines
    assert "terminal total      1.49 EUR" in slip and "kiosk card tenders  1.49 EUR" in slip
    assert "Kassenschnitt" in slip and "0650" in sim.commands
    assert Audit.get(Audit.action == payments.TERMINAL_EOD).new == "1.49"
    # After the terminal's end of day a same-day return is refunded, not reversed.
    sale = Txn.get(Txn.kind == "sale").number
    co.staff_logout()
    co.staff_login("5678")
    assert "presents the card" in do_return(co, sale, ("PEN", "1")).message


def test_a_terminal_failure_never_blocks_the_z_report(co, sim, shop):
    card_sale(co, PEN)
    sim.stop()
    co.terminal.close()
    co.staff_login("1234")
    z = co.end_of_day()
    assert z.ok and z.data["report"].counts == {"sale": 1}
    assert co.printer.printed[-1].lines[0].startswith("Z report")
    outcome = co.terminal_wait()
    assert not outcome.ok and "end of day failed" in outcome.message
    assert any("kiosk hw payment --end-of-day" in a for a in co.alerts)
    assert not Audit.select().where(Audit.action == payments.TERMINAL_EOD).exists()


def test_unsettled_payments_are_listed_retried_and_resolved_on_the_staff_menu(co, sim, shop):
    pid = payments.record_request(shop, "authorize", Decimal("1.49"), "zvt")  # in flight
    sim.stop()
    co.terminal.close()
    co.staff_login("5678")
    listed = co.list_payments()
    assert listed.ok and len(listed.data["payments"]) == 1
    assert f"#{pid} " in listed.data["payments"][0] and "requested" in listed.data["payments"][0]
    assert co.snapshot()["payments"] == listed.data["payments"]
    assert co.retry_payments().ok is not None
    co.terminal_wait()
    assert co.card_blocked  # the terminal does not answer
    refused = co.resolve_payment(pid, "checked the terminal's receipts: not taken")
    assert not refused.ok and "supervisor" in refused.message
    co.staff_logout()
    co.staff_login("1234")
    assert not co.resolve_payment(pid, " ").ok  # a reason is needed
    done = co.resolve_payment_text(f"#{pid} checked the terminal's receipts: not taken")
    assert done.ok, done.message
    row = Payment.get_by_id(pid)
    assert row.state == "resolved" and "not taken" in row.note
    entry = Audit.get(Audit.action == "payment_resolved")
    assert (entry.staff, entry.old, entry.new) == ("S1", "requested", "resolved")
    assert co.card_blocked is None and co.list_payments().data["payments"] == []
    assert not co.resolve_payment(pid, "again").ok


def test_kiosk_payment_list_and_resolve(shop, config, tmp_path):
    pid = payments.record_request(shop, "authorize", Decimal("2.50"), "zvt 10.0.0.5:20007")
    config_file = tmp_path / "kiosk.toml"
    config_file.write_text(f'[device]\nid = "till-01"\n[ledger]\npath = "{shop.path}"\n')
    runner = CliRunner()
    args = ["--config", str(config_file)]
    listed = runner.invoke(cli, ["payment", "list", *args])
    assert listed.exit_code == 0, listed.output
    assert f"#{pid} " in listed.output and "2.50 EUR requested" in listed.output
    bad = runner.invoke(
        cli, ["payment", "resolve", str(pid), "--staff", "C1", "--reason", "x", *args]
    )
    assert bad.exit_code == 2 and "supervisor" in bad.output
    ok = runner.invoke(
        cli,
        [
            "payment",
            "resolve",
            str(pid),
            "--staff",
            "S1",
            "--reason",
            "refunded at the terminal",
            *args,
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "resolved" in ok.output
    assert (
        runner.invoke(cli, ["payment", "list", *args])
        .output.strip()
        .endswith("no unsettled card payments")
    )
    missing = runner.invoke(
        cli, ["payment", "resolve", "999", "--staff", "S1", "--reason", "x", *args]
    )
    assert missing.exit_code == 2 and "no payment 999" in missing.output


def test_verify_checks_the_payment_journal(co, sim, shop):
    sale = card_sale(co, PEN)
    assert verify(shop) == []
    raw = sqlite3.connect(shop.path)
    raw.execute("UPDATE payment SET txn = 'till-01-999999' WHERE txn = ?", (sale,))
    raw.execute(
        "INSERT INTO payment (created_at, updated_at, kind, amount, currency, terminal, state, "
        "note) VALUES ('2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'authorize', '1.00', "
        "'EUR', 'zvt', 'declined', 'card 4006 1234 5678 9012')"
    )
    raw.commit()
    raw.close()
    problems = [p for p in verify(shop) if p.startswith("payment")]
    assert any("not in the tenders of a posted sale" in p for p in problems), problems
    assert any("looks like a card number" in p for p in problems), problems


def test_the_refund_column_comes_with_schema_4_on_a_version_3_ledger(shop, sim, tmp_path):
    co = Checkout(shop, MemoryPrinter(), terminal=terminal_for(sim))
    card_sale(co, PEN)
    co.terminal.close()
    path, config = shop.path, shop.config
    shop.close()
    raw = sqlite3.connect(path)
    raw.execute("ALTER TABLE payment DROP COLUMN request")  # as schema 3 made it
    raw.execute("PRAGMA user_version = 3")
    raw.commit()
    raw.close()
    with Ledger.open(config, path) as ledger:
        assert ledger.db.execute_sql("PRAGMA user_version").fetchone()[0] == LATEST >= 4
        assert journal() == [("authorize", "committed", "1.49")]
        rid = payments.record_request(
            ledger, "refund", Decimal("1.49"), "zvt", 1, {"kind": "return"}
        )
        assert payments.request_of(rid) == {"kind": "return"} and payments.is_refund(rid)
        assert json.loads(json.dumps(payments.request_of(rid))) == {"kind": "return"}


REPLAY = """\
{"scan": "4006381333931"}
{"scan": "4006381333931"}
{"terminal": {"plan": ["decline"]}}
{"pay": {"terminal": null}}
{"expect": {"ok": false, "state": "paying", "message": "declined"}}
{"pay": {"terminal": "1.00"}}
{"expect": {"ok": true, "message": "still to pay: 1.98"}}
{"pay": {"terminal": null}}
{"expect": {"ok": true, "state": "receipt"}}
{"receipt": "none"}
{"staff": "1234"}
{"terminal": {"refund_plan": ["decline", "decline"]}}
{"return": {"receipt": "{last_sale}", "lines": [{"sku": "PEN", "qty": "2"}]}}
{"expect": {"ok": false, "state": "returning", "message": "not posted"}}
{"refund": "retry"}
{"expect": {"ok": true, "state": "staff_menu", "message": "refund 2.98"}}
{"payments": "list"}
{"expect": {"message": "no unsettled"}}
{"report": "z"}
{"expect": {"ok": true, "message": "terminal total 0.00 EUR"}}
"""


def test_kiosk_replay_drives_card_payments_and_refunds_through_the_simulator(shop, tmp_path):
    script = tmp_path / "session.jsonl"
    script.write_text(REPLAY)
    config_file = tmp_path / "kiosk.toml"
    config_file.write_text(f'[device]\nid = "till-01"\n[ledger]\npath = "{shop.path}"\n')
    shop.close()
    runner = CliRunner()
    args = ["replay", str(script), "--config", str(config_file), "--db", str(shop.path)]
    result = runner.invoke(cli, [*args, "--terminal", "sim"])
    assert result.exit_code == 0, result.output
    assert "simulated card terminal on 127.0.0.1:" in result.output
    assert "Card refund declined" in result.output
    with Ledger.open(shop.config, shop.path) as ledger:
        kinds = [(p.kind, p.state) for p in Payment.select().order_by(Payment.id)]
        assert kinds == [
            ("authorize", "declined"),
            ("authorize", "committed"),
            ("authorize", "committed"),
            ("reversal", "declined"),
            ("refund", "declined"),
            ("refund", "committed"),
            ("reversal", "committed"),
        ]
        assert verify(ledger) == []
    without = runner.invoke(cli, args)  # no terminal: one line naming the option
    assert without.exit_code == 2 and "--terminal sim" in without.output


class LinkDownOnce(ZvtTerminal):
    """The real driver, whose first repeat-receipt finds the link down."""

    down = 1

    def last_transaction(self, listener=None):
        if self.down:
            self.down -= 1
            return TerminalResult("failed", "repeat receipt: connection refused")
        return super().last_transaction()


def test_a_refund_whose_answer_stays_lost_is_asked_again_never_sent_again(shop, sim):
    co = Checkout(shop, MemoryPrinter())
    co.terminal = LinkDownOnce(TcpLink("127.0.0.1", sim.port, 2.0), idle_timeout=10.0)
    sale = card_sale(co, PEN, PEN)
    co.staff_login("1234")
    sim.plan_refund("drop_after_approval")
    do_return(co, sale, ("PEN", "1"))
    outcome = co.terminal_wait()
    assert not outcome.ok and "does not answer" in outcome.message and co.card_blocked
    refused = co.refund_cash()  # it may have been given: no cash on top
    assert not refused.ok and "not settled" in refused.message
    assert co.retry_refund().ok  # asks the terminal; sends nothing new
    done = co.terminal_wait()
    assert done.ok and co.state == State.STAFF_MENU, done.message
    assert [t.amount for t in sim.journal if t.kind == "refund"] == [149]
    assert co.card_blocked is None and payments.unsettled() == []
    assert verify(shop) == []
    co.terminal.close()
