"""Card payments against a hostile terminal (tester j's findings F1-F13): a small ZVT
terminal on 127.0.0.1 that answers what a broken or hostile one might, driven through
the real driver and the real checkout; and the simulator for the refund cases."""

from __future__ import annotations

import socket
import threading
import time
from decimal import Decimal

import pytest
from click.testing import CliRunner

from kiosk.checkout.session import Checkout, State
from kiosk.demo.terminal import TerminalSimulator
from kiosk.drivers.base import MemoryPrinter
from kiosk.drivers.payment import TerminalResult
from kiosk.drivers.zvt import codec
from kiosk.drivers.zvt.codec import Apdu, ZvtError, decode_apdu
from kiosk.drivers.zvt.driver import ZvtTerminal
from kiosk.drivers.zvt.transport import TcpLink
from kiosk.ledger import payments
from kiosk.ledger.models import Payment, Tender, Txn
from kiosk.ledger.verify import verify

PAN = "4111111111111111"
PEN = "4006381333931"  # 1.49
CABLE = "4001234000039"  # 9.99
TID = "29001006"
ACK = b"\x80\x00\x00"


def status(amount: int | None = 149, result: int = 0, receipt: int | None = 7, extra=b"") -> Apdu:
    data = bytes((0x27, result))
    if amount is not None:
        data += b"\x04" + codec.bcd(amount, 6)
    data += b"\x0b" + codec.bcd(1, 3) + b"\x29" + bytes.fromhex(TID)
    if receipt is not None:
        data += b"\x87" + codec.bcd(receipt, 2)
    return Apdu(0x04, 0x0F, data + extra)


class Hostile:
    """A terminal on 127.0.0.1 whose answers a test scripts: `answers[command hex]` is
    a list of APDUs (or raw bytes) sent after the ACK; registration is approved."""

    def __init__(self):
        self.answers: dict[str, list] = {}
        self.commands: list[str] = []
        self.stream_until = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.stopped = threading.Event()
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def stop(self):
        self.stopped.set()
        self.stream_until.set()
        self.server.close()
        for sock in self.socks:
            sock.close()

    def _serve(self):
        while not self.stopped.is_set():
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            self.socks.append(sock)
            threading.Thread(target=self._handle, args=(sock,), daemon=True).start()

    def _read(self, sock, buf, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            found = decode_apdu(buf[0])
            if found:
                buf[0] = buf[0][found[1] :]
                return found[0]
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            sock.settimeout(left)
            chunk = sock.recv(4096)
            if not chunk:
                return None
            buf[0] += chunk

    def _handle(self, sock):
        buf = [b""]
        try:
            while not self.stopped.is_set():
                apdu = self._read(sock, buf, 30.0)
                if apdu is None:
                    return
                key = apdu.command.hex()
                self.commands.append(key)
                if key in ("8000", "06b0"):
                    if key == "06b0":
                        sock.sendall(ACK)
                    continue
                sock.sendall(ACK)
                script = self.answers.get(key, [Apdu(0x06, 0x0F)])
                for answer in script:
                    if answer == "stream":  # intermediate status until the test ends
                        while not self.stream_until.wait(0.1):
                            sock.sendall(Apdu(0x04, 0xFF, b"\x0a").encode())
                        continue
                    sock.sendall(answer if isinstance(answer, bytes) else answer.encode())
                    self._read(sock, buf, 5.0)  # the register's ACK
        except OSError:
            return


@pytest.fixture
def hostile():
    terminal = Hostile()
    yield terminal
    terminal.stop()


def zvt(port: int, idle: float = 5.0, ack: float = 1.0) -> ZvtTerminal:
    return ZvtTerminal(TcpLink("127.0.0.1", port, 2.0), idle_timeout=idle, ack_timeout=ack)


@pytest.fixture
def co(shop, hostile):
    checkout = Checkout(shop, MemoryPrinter(), terminal=zvt(hostile.port))
    yield checkout
    checkout.terminal.close()


def ledger_bytes(ledger) -> bytes:
    ledger.db.execute_sql("PRAGMA wal_checkpoint(FULL)")
    raw = ledger.path.read_bytes()
    wal = ledger.path.with_name(ledger.path.name + "-wal")
    return raw + (wal.read_bytes() if wal.exists() else b"")


# ---------------------------------------------------------------- F1 amounts


def test_an_approval_for_another_amount_is_reversed_and_sells_nothing(co, hostile):
    hostile.answers["0601"] = [status(amount=1), Apdu(0x06, 0x0F)]  # 0.01 for 1.49
    hostile.answers["0630"] = [status(amount=1, receipt=8), Apdu(0x06, 0x0F)]
    co.scan(PEN)
    assert co.tender_card().ok
    outcome = co.terminal_wait()
    assert not outcome.ok and co.state == State.PAYING, outcome.message
    assert "different amount" in outcome.message
    assert "0630" in hostile.commands  # reversed by its receipt number
    assert Txn.select().count() == 0 and Tender.select().count() == 0
    row = Payment.get(Payment.kind == "authorize")
    assert row.state == "reversed"
    assert any("instead of" in alert for alert in co.alerts)
    assert verify(co.ledger) == []


def test_an_approval_without_an_amount_is_not_a_payment(co, hostile):
    hostile.answers["0601"] = [status(amount=None), Apdu(0x06, 0x0F)]
    hostile.answers["0620"] = [Apdu(0x06, 0x0F)]  # the repeat receipt knows nothing
    co.scan(PEN)
    co.tender_card()
    outcome = co.terminal_wait()
    assert not outcome.ok and Txn.select().count() == 0, outcome.message


# ---------------------------------------------------------------- F3 F5 results


@pytest.mark.parametrize(
    "script",
    [
        [Apdu(0x06, 0x0F)],  # completion only
        [status(receipt=None), Apdu(0x06, 0x0F)],  # approved without a receipt number
        [Apdu(0x04, 0x0F, b"\x27\x05\x87\xab\xcd"), Apdu(0x06, 0x0F)],  # declined, bad BCD
        [Apdu(0x04, 0x0F, b"\x27\x05\xfe\x01"), Apdu(0x06, 0x0F)],  # declined, unknown BMP
        [status(), Apdu(0x06, 0x1E, b"\x6c")],  # approved, then aborted
    ],
    ids=["completion_only", "no_receipt", "bad_bcd", "unknown_bmp", "approved_then_abort"],
)
def test_no_valid_approval_is_unknown_never_approved(hostile, script):
    hostile.answers["0601"] = script
    terminal = zvt(hostile.port)
    try:
        result = terminal.authorize(Decimal("1.49"))
    finally:
        terminal.close()
    assert result.outcome == "unknown", result


def test_no_blind_reversal_of_the_last_transaction(co):
    result = co._reverse_call([None], lambda _u: None)
    assert result[0].outcome == "declined" and "blindly" in result[0].message


# ---------------------------------------------------------------- F4 endless status


def test_endless_intermediate_status_is_bounded_and_cancel_ends_it(hostile):
    hostile.answers["0601"] = ["stream"]
    terminal = zvt(hostile.port, idle=1.0, ack=0.5)
    try:
        result = terminal.authorize(Decimal("1.49"))  # bounded by idle_timeout
        assert result.outcome == "unknown", result
        out: list = []
        worker = threading.Thread(target=lambda: out.append(terminal.authorize(Decimal("1"))))
        terminal.idle_timeout = 600.0
        worker.start()
        deadline = time.monotonic() + 10
        while not terminal._busy and time.monotonic() < deadline:
            time.sleep(0.01)
        terminal.abort()  # cancel: it ends although the terminal keeps streaming
        worker.join(15)
        assert not worker.is_alive() and out[0].outcome == "unknown"
    finally:
        hostile.stream_until.set()
        terminal.close()


# ---------------------------------------------------------------- F2 F6 card numbers


def test_a_card_number_in_the_terminals_text_is_masked_everywhere(co, hostile, caplog):
    text = f"Karte {PAN} gesperrt".encode()
    extra = b"\x3c" + codec.encode_var(text, 3)
    hostile.answers["0601"] = [
        Apdu(0x04, 0xFF, b"\x0a"),
        status(result=0x05, extra=extra),
        Apdu(0x06, 0x1E, b"\x05"),
    ]
    caplog.set_level("DEBUG")
    co.scan(PEN)
    co.tender_card()
    outcome = co.terminal_wait()
    assert not outcome.ok and co.state == State.PAYING
    assert PAN not in co.snapshot()["message"] and PAN not in outcome.message
    assert PAN.encode() not in ledger_bytes(co.ledger)
    assert PAN not in caplog.text and "41 11 11 11" not in caplog.text
    assert verify(co.ledger) == []


def test_a_result_never_carries_a_card_number():
    from kiosk.drivers.payment import CARD_NUMBER  # noqa: PLC0415

    result = TerminalResult("declined", f"x {PAN} y", customer_receipt=("4111 1111 1111 1111",))
    assert not CARD_NUMBER.search(result.message + result.customer_receipt[0])
    assert CARD_NUMBER.pattern == payments.CARD_NUMBER.pattern  # one pattern: verify's


def test_a_stored_card_number_is_found_and_scrubbed(shop):
    pid = payments.record_request(shop, "authorize", Decimal("1.49"), "zvt")
    Payment.update(note=f"Karte {PAN} " * 100).where(Payment.id == pid).execute()
    assert any("card number" in p for p in verify(shop))
    assert payments.scrub_card_numbers(shop) == 1
    assert verify(shop) == [] and len(Payment.get_by_id(pid).note) <= 200


# ---------------------------------------------------------------- F10 F11 depth


def deep_tlv(depth: int) -> bytes:
    data = b"\x07\x01A"
    for _ in range(depth):
        data = codec.encode_tlv(0x20 | 0x06, data)  # constructed
    return data


def test_a_deeply_nested_tlv_is_refused_without_recursion():
    with pytest.raises(ZvtError):
        codec.parse_tlv(deep_tlv(3000))
    assert codec.parse_tlv(deep_tlv(3))


def test_a_driver_error_during_recovery_pauses_card_payments(co, shop):
    payments.record_request(shop, "authorize", Decimal("1.49"), "zvt")

    def broken(_listener):
        raise RuntimeError("driver bug")

    co.terminal.last_transaction = broken
    co.recover_payments()
    outcome = co.terminal_wait()
    assert not outcome.ok and co.card_blocked
    assert any("not settled" in alert for alert in co.alerts)


def test_registration_does_not_wait_for_the_payment_timeout(hostile):
    hostile.answers["0600"] = ["stream"]
    terminal = zvt(hostile.port, idle=600.0, ack=0.5)
    try:
        result = terminal.register()  # would hang 600 s before
        assert not result.approved
    finally:
        hostile.stream_until.set()
        terminal.close()


# ---------------------------------------------------------------- F12 typed references


def test_a_card_number_is_refused_as_a_reference_and_as_a_reason(shop):
    checkout = Checkout(shop, MemoryPrinter())  # manual terminal: typed references
    checkout.scan(PEN)
    refused = checkout.tender_card(reference="4111 1111 1111 1111")
    assert not refused.ok and "card number" in refused.message
    assert Tender.select().count() == 0
    pid = payments.record_request(shop, "authorize", Decimal("1.49"), "zvt")
    with pytest.raises(Exception, match="card number"):
        payments.resolve(shop, pid, "S1", f"refunded {PAN}")


def test_resolve_with_a_huge_id_is_one_line(tmp_path, shop):
    from kiosk.cli import cli  # noqa: PLC0415

    config = tmp_path / "k.toml"
    config.write_text(f'[ledger]\npath = "{shop.path}"\n')
    result = CliRunner().invoke(
        cli,
        ["--config", str(config), "payment", "resolve", "9" * 23, "--staff", "S1", "--reason", "x"],
    )
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output


# ---------------------------------------------------------------- F7 F8 F9 refunds


@pytest.fixture
def sim():
    simulator = TerminalSimulator().start()
    yield simulator
    simulator.stop()


def test_a_resolved_refund_counts_and_is_never_given_twice(shop, sim):
    co = Checkout(shop, MemoryPrinter(), terminal=zvt(sim.port, idle=10.0, ack=2.0))
    co.scan(CABLE)
    assert co.tender_card("5.00").ok and co.terminal_wait().ok
    assert co.tender_card("4.99").ok and co.terminal_wait().ok
    sale = co.last_posted.number
    co.choose_receipt(False)
    co.staff_login("1234")
    sim.plan_refund("approve", "decline", "decline")  # the second part is refused
    assert co.start_return(sale).ok and co.return_item("CABLE", "1").ok
    co.finish_return("unwanted")
    assert not co.terminal_wait().ok
    co.terminal.close()
    # a restart: the given part waits; staff resolve it as an old alert said, then redo
    co = Checkout(shop, MemoryPrinter(), terminal=zvt(sim.port, idle=10.0, ack=2.0))
    co.recover_payments()
    co.terminal_wait()
    given = Payment.get(Payment.kind == "reversal")
    assert given.state == "unposted"
    payments.resolve(shop, given.id, "S1", "refunded at the terminal")
    co.staff_login("1234")
    assert co.start_return(sale).ok and co.return_item("CABLE", "1").ok
    co.finish_return("unwanted")
    co.terminal_wait()
    back = sum(t.amount for t in sim.journal if t.kind in ("refund", "reversal") and t.result == 0)
    assert back <= 999, [(t.kind, t.amount, t.result) for t in sim.journal]
    assert verify(shop) == []
    co.terminal.close()
