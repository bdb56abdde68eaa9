"""The ZVT driver against the simulated terminal over a real loopback socket: every
command, intermediate status, receipts as text blocks and as print lines, declines,
aborts, a customer who walks away, a silent terminal, dropped connections, the
serial framing through pyserial, and `kiosk hw payment`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal

import pytest

from kiosk.demo.terminal import TerminalSimulator
from kiosk.drivers.payment import TerminalJob, Update
from kiosk.drivers.zvt.driver import ZvtTerminal
from kiosk.drivers.zvt.transport import SerialLink, TcpLink


@pytest.fixture
def sim():
    simulator = TerminalSimulator().start()
    yield simulator
    simulator.stop()


def driver(sim, **kw) -> ZvtTerminal:
    options = {"ack_timeout": 2.0, "idle_timeout": 10.0, **kw}
    return ZvtTerminal(TcpLink("127.0.0.1", sim.port, 2.0), **options)


def test_an_approved_payment_with_status_receipts_and_references(sim):
    terminal = driver(sim)
    updates: list[Update] = []
    result = terminal.authorize(Decimal("12.34"), updates.append)
    assert result.outcome == "approved", result.message
    assert result.amount == Decimal("12.34")
    assert result.receipt_no == "0001" and result.terminal_id == "29001006"
    assert result.trace == "000001" and result.approval == "600001"
    assert result.card_name == "girocard"
    assert result.reference == "T29001006 R0001 TR000001 A600001"
    statuses = [u.status for u in updates if u.kind == "status"]
    assert statuses == ["insert_card", "pin", "processing", "remove_card"]
    assert any("KUNDENBELEG" in line for line in result.customer_receipt)
    assert any("HAENDLERBELEG" in line for line in result.merchant_receipt)
    assert "BETRAG:    EUR    12,34" in result.customer_receipt
    # the masked number and expiry went to the decoder and no further
    assert "4821" not in repr({k: v for k, v in vars(result).items() if "receipt" not in k})
    assert sim.commands[:2] == ["0600", "0601"]  # registered first, once
    assert [t.amount for t in sim.approved()] == [1234]
    assert "registered, TID 29001006" in terminal.state()
    second = terminal.authorize(Decimal("1.00"))
    assert second.receipt_no == "0002" and sim.commands.count("0600") == 1


def test_receipts_as_print_lines(sim):
    sim.lines_only = True
    result = driver(sim).authorize(Decimal("5.00"))
    assert result.approved
    assert result.customer_receipt[1] == "** KUNDENBELEG **"
    assert result.merchant_receipt[1] == "** HAENDLERBELEG **"


def test_decline_abort_and_refusal(sim):
    terminal = driver(sim)
    sim.plan("decline", "abort", "nack")
    declined = terminal.authorize(Decimal("9.99"))
    assert (declined.outcome, declined.code) == ("declined", 5)
    assert "Abgelehnt" in declined.message
    aborted = terminal.authorize(Decimal("9.99"))
    assert aborted.outcome == "aborted" and aborted.code == 0x6C
    refused = terminal.authorize(Decimal("9.99"))
    assert refused.outcome == "failed" and "please wait" in refused.message
    assert sim.approved() == []


def test_customer_walks_away_and_the_kiosk_aborts(sim):
    terminal = driver(sim, idle_timeout=0.5)
    sim.plan("timeout")
    result = terminal.authorize(Decimal("3.00"))
    assert result.outcome == "aborted"
    assert "06b0" in sim.commands and sim.approved() == []


def test_abort_from_another_thread(sim):
    terminal = driver(sim)
    sim.plan("timeout")
    seen = threading.Event()
    job = TerminalJob("authorize", terminal.authorize, Decimal("3.00"), notify=seen.set).start()
    assert seen.wait(5)  # "insert card" arrived: the payment is running
    terminal.abort()
    assert job.wait(10)
    assert job.result.outcome == "aborted"
    assert [u.status for u in job.drain() if u.kind == "status"] == ["insert_card"]


def test_a_silent_terminal_is_unknown_not_declined(sim):
    terminal = driver(sim, idle_timeout=0.3, ack_timeout=0.3)
    sim.plan("silent")
    result = terminal.authorize(Decimal("4.00"))
    assert result.outcome == "unknown" and "stopped answering" in result.message


def test_dropped_connections(sim):
    terminal = driver(sim)
    sim.plan("drop")
    lost = terminal.authorize(Decimal("2.00"))
    assert lost.outcome == "unknown" and sim.approved() == []
    last = terminal.last_transaction()  # nothing happened: no transaction at all
    assert last.outcome == "declined" and "not possible" in last.message
    sim.plan("drop_after_approval")
    lost = terminal.authorize(Decimal("2.50"))
    assert lost.outcome == "unknown"
    assert [t.amount for t in sim.approved()] == [250]  # the terminal did take it
    last = terminal.last_transaction()  # reconnects, registers, asks
    assert last.approved and last.amount == Decimal("2.50") and last.receipt_no == "0001"
    reversal = terminal.reverse(last.receipt_no)
    assert reversal.approved and sim.approved() == []
    again = terminal.reverse(last.receipt_no)
    assert again.outcome == "declined" and "already reversed" in again.message


def test_a_terminal_that_closed_an_idle_connection_is_reconnected(sim):
    terminal = driver(sim)
    assert terminal.authorize(Decimal("1.00")).approved
    sim.drop_connections()
    deadline = time.monotonic() + 5
    while terminal.link.alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert terminal.authorize(Decimal("1.00")).approved  # not "unknown"


def test_unreachable_terminal_and_wrong_password(sim):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    terminal = ZvtTerminal(TcpLink("127.0.0.1", port, 1.0))
    result = terminal.authorize(Decimal("1.00"))
    assert result.outcome == "failed" and "not reachable" in result.message
    wrong = driver(sim, password="123456")
    assert wrong.register().outcome == "failed"
    assert wrong.authorize(Decimal("1.00")).outcome == "failed"
    assert sim.approved() == []


def test_refund_end_of_day_diagnosis_and_log_off(sim):
    terminal = driver(sim)
    assert terminal.register().approved
    assert terminal.diagnose().approved
    assert terminal.authorize(Decimal("10.00")).approved
    refund = terminal.refund(Decimal("4.00"))
    assert refund.approved and refund.amount == Decimal("4.00")
    eod = terminal.end_of_day()
    assert eod.approved and eod.amount == Decimal("6.00")
    assert "Kassenschnitt" in eod.admin_receipt
    late = terminal.reverse("0001")  # settled at end of day: only a refund helps now
    assert late.outcome == "declined" and "reversal not possible" in late.message
    assert terminal.log_off().approved and not terminal.registered
    assert sim.commands[-1] == "0602"


def test_serial_framing_through_pyserial():
    sim = TerminalSimulator(framed=True).start()
    try:
        terminal = ZvtTerminal(SerialLink(f"socket://127.0.0.1:{sim.port}"), idle_timeout=10)
        result = terminal.authorize(Decimal("7.77"))
        assert result.approved and result.amount == Decimal("7.77")
        assert any("KUNDENBELEG" in line for line in result.customer_receipt)
    finally:
        sim.stop()


def test_round_trip_figure(sim, capsys):
    """Not a timed assertion: the figure is printed for the README."""
    terminal = driver(sim)
    terminal.register()
    started = time.perf_counter()
    for _ in range(50):
        assert terminal.authorize(Decimal("1.00")).approved
    per = (time.perf_counter() - started) / 50 * 1000
    with capsys.disabled():
        print(f"\nZVT payment round trip against the simulator: {per:.1f} ms")


def test_hw_payment_command(sim, tmp_path):
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'[ledger]\npath = "{tmp_path / "l.db"}"\n'
        f'[payment]\nkind = "zvt"\nhost = "127.0.0.1"\nport = {sim.port}\n'
    )
    env = {**os.environ, "KIOSK_CONFIG": str(config)}
    run = subprocess.run(
        [sys.executable, "-m", "kiosk.cli", "hw", "payment"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "registration: approved" in run.stdout and "TID 29001006" in run.stdout
    assert sim.commands[:2] == ["0600", "0670"]
    manual = tmp_path / "manual.toml"
    manual.write_text(f'[ledger]\npath = "{tmp_path / "l.db"}"\n')
    run = subprocess.run(
        [sys.executable, "-m", "kiosk.cli", "hw", "payment"],
        env={**env, "KIOSK_CONFIG": str(manual)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert 'kind = "manual"' in run.stderr
