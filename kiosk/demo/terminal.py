"""A simulated ZVT card terminal on 127.0.0.1, for `kiosk run --demo` and the tests.

It speaks the protocol as a terminal does, over TCP (or, with `framed=True`, with
the serial line's DLE STX framing, CRC and ACK bytes, for pyserial's socket://
URLs): registration with password and currency, authorization with intermediate
status ("insert card", "PIN", "remove card"), status information with references,
the receipts as print text blocks (06 D3) or print lines (06 D1), completion or
abort, reversal by receipt number, refund, end of day, repeat receipt, diagnosis,
abort and log-off. It keeps its own journal of what it approved, so a test can ask
it what really happened to the money.

What the next payments do is planned with `plan(...)`: "approve" (the default),
"decline", "abort" (the customer presses stop), "timeout" (the customer walks
away: silence until the register aborts), "silent" (the terminal hangs), "drop"
(the link drops before the card is read), "drop_after_approval" (approved, then the
link drops before the result is sent), "nack" (the command is refused).
Refunds and reversals follow their own plan, `plan_refund(...)`: "approve", "decline"
(the card or the bank refuses), "abort", "drop_after_approval", "nack", and for
reversals "not_possible" (the terminal cannot reverse: a refund is needed instead).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from kiosk.drivers.zvt import codec
from kiosk.drivers.zvt.codec import Apdu, decode_apdu, encode_ber_length, encode_tlv, encode_var

log = logging.getLogger(__name__)
PLANS = ("approve", "decline", "abort", "timeout", "silent", "drop", "drop_after_approval", "nack")
REFUND_PLANS = ("approve", "decline", "abort", "drop_after_approval", "nack", "not_possible")


class Dropped(Exception):
    pass


@dataclass
class Transaction:
    receipt_no: int
    kind: str  # payment, refund, reversal
    amount: int  # minor units
    trace: int
    result: int = 0
    reversed: bool = False
    approval: str = ""
    when: datetime = field(default_factory=datetime.now)


class _Conn:
    """One register connection: APDUs in and out, framed for a serial line if asked."""

    def __init__(self, sock: socket.socket, framed: bool):
        self.sock, self.framed, self.buffer = sock, framed, b""

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        chunk = self.sock.recv(4096)
        if not chunk:
            raise Dropped
        self.buffer += chunk

    def read(self, timeout: float) -> Apdu:
        deadline = time.monotonic() + timeout
        while True:
            if self.framed:
                while self.buffer[:1] == bytes((codec.SACK,)):
                    self.buffer = self.buffer[1:]
                found = codec.unframe(self.buffer) if self.buffer else None
                if found is not None:
                    raw, used = found
                    self.buffer = self.buffer[used:]
                    self.sock.sendall(bytes((codec.SACK,)))
                    return decode_apdu(raw)[0]
            else:
                decoded = decode_apdu(self.buffer)
                if decoded is not None:
                    self.buffer = self.buffer[decoded[1] :]
                    return decoded[0]
            self._fill(deadline)

    def write(self, apdu: Apdu) -> None:
        data = apdu.encode()
        self.sock.sendall(codec.frame(data) if self.framed else data)
        if self.framed:  # the register's link layer acknowledges each frame
            deadline = time.monotonic() + 5
            while not self.buffer:
                self._fill(deadline)
            if self.buffer[0] == codec.SACK:
                self.buffer = self.buffer[1:]


class TerminalSimulator:
    def __init__(
        self,
        password: str = "000000",
        currency: int = 978,
        terminal_id: str = "29001006",
        step_s: float = 0.0,
        framed: bool = False,
        port: int = 0,
    ):
        self.password = password
        self.currency = currency
        self.terminal_id = terminal_id
        self.step_s = step_s
        self.framed = framed
        self.plans: list[str] = []
        self.refund_plans: list[str] = []  # what the next refunds and reversals do
        self.journal: list[Transaction] = []
        self.commands: list[str] = []  # every command received, as hex of its control field
        self.registered = False
        self.config_byte = 0
        self.text_blocks = False
        self.lines_only = False  # send receipts as print lines even where blocks are allowed
        self.next_receipt = 1
        self.next_trace = 1
        self.batch: list[Transaction] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", port))
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name="zvt-simulator", daemon=True)

    # ------------------------------------------------------------ control

    def start(self) -> TerminalSimulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.close()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.close()
        self._thread.join(5)

    def plan(self, *plans: str) -> None:
        for plan in plans:
            if plan not in PLANS:
                raise ValueError(f"unknown plan {plan!r}: one of {', '.join(PLANS)}")
        with self._lock:
            self.plans.extend(plans)

    def plan_refund(self, *plans: str) -> None:
        for plan in plans:
            if plan not in REFUND_PLANS:
                raise ValueError(f"unknown refund plan {plan!r}: one of {', '.join(REFUND_PLANS)}")
        with self._lock:
            self.refund_plans.extend(plans)

    def _refund_plan(self) -> str:
        with self._lock:
            return self.refund_plans.pop(0) if self.refund_plans else "approve"

    def approved(self, kind: str = "payment") -> list[Transaction]:
        """What the terminal holds as taken: approved and not reversed."""
        return [t for t in self.journal if t.kind == kind and t.result == 0 and not t.reversed]

    def drop_connections(self) -> None:
        for conn in list(self._conns):
            try:
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            except OSError:
                pass

    # ------------------------------------------------------------ serving

    def _serve(self) -> None:
        self._server.settimeout(0.2)  # so stop() is seen at once
        while not self._stop.is_set():
            try:
                sock, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conns.append(sock)
            threading.Thread(target=self._handle, args=(sock,), daemon=True).start()

    def _handle(self, sock: socket.socket) -> None:
        conn = _Conn(sock, self.framed)
        try:
            while not self._stop.is_set():
                try:
                    apdu = conn.read(3600)
                except TimeoutError:
                    continue
                self.commands.append(apdu.command.hex())
                self._dispatch(conn, apdu)
        except (Dropped, OSError, codec.ZvtError):
            pass
        finally:
            if sock in self._conns:
                self._conns.remove(sock)
            with contextlib.suppress(OSError):
                sock.close()

    def _dispatch(self, conn: _Conn, apdu: Apdu) -> None:
        handlers = {
            b"\x06\x00": self._registration,
            b"\x06\x01": self._authorization,
            b"\x06\x30": self._reversal,
            b"\x06\x31": self._refund,
            b"\x06\x50": self._end_of_day,
            b"\x06\x20": self._repeat,
            b"\x06\x70": self._diagnosis,
            b"\x05\x01": self._diagnosis,
            b"\x06\x02": self._log_off,
            b"\x06\xb0": self._ack_only,
        }
        handler = handlers.get(apdu.command)
        if handler is None:
            conn.write(Apdu(0x84, 0x83))  # function not possible
            return
        handler(conn, apdu.data)

    # ------------------------------------------------------------ PT -> ECR

    def _send(self, conn: _Conn, apdu: Apdu) -> bool:
        """Send a message and wait for the register's 80 00 00; True if it asked to abort."""
        conn.write(apdu)
        aborted = False
        while True:
            reply = conn.read(5)
            if reply.command == b"\x06\xb0":
                self.commands.append(reply.command.hex())
                conn.write(Apdu(0x80, 0x00))
                aborted = True
                continue
            return aborted

    def _status(self, conn: _Conn, code: int) -> bool:
        return self._send(conn, Apdu(0x04, 0xFF, bytes((code, 30))))

    def _pause(self, conn: _Conn) -> bool:
        """The customer's time at the terminal; True if the register aborted meanwhile."""
        if self.step_s <= 0:
            return False
        try:
            reply = conn.read(self.step_s)
        except TimeoutError:
            return False
        self.commands.append(reply.command.hex())
        if reply.command == b"\x06\xb0":
            conn.write(Apdu(0x80, 0x00))
            return True
        return False

    def _check_password(self, conn: _Conn, data: bytes) -> bool:
        if data[:3] != codec.password_bytes(self.password):
            conn.write(Apdu(0x84, 0x00))
            return False
        return True

    def _receipt_lines(self, txn: Transaction, title: str) -> list[str]:
        amount = f"{txn.amount // 100},{txn.amount % 100:02d}"
        what = {"payment": "Zahlung", "refund": "Gutschrift", "reversal": "Storno"}[txn.kind]
        return [
            "  kiosk demo terminal",
            f"** {title} **",
            f"{txn.when:%d.%m.%Y}        {txn.when:%H:%M:%S}",
            f"Terminal-ID:      {self.terminal_id}",
            f"Trace-Nr:           {txn.trace:06d}",
            f"Beleg-Nr:             {txn.receipt_no:04d}",
            "girocard       kontaktlos",
            "Nr. ############4821",
            f"{what}",
            f"BETRAG:    EUR    {amount}",
            f"Autorisierung: {txn.approval}",
            "Zahlung erfolgt" if txn.result == 0 else "Abgelehnt",
        ]

    def _print(self, conn: _Conn, txn: Transaction) -> None:
        if not self.config_byte & codec.ECR_PRINTS_PAYMENT:
            return  # the terminal prints on its own printer
        for receipt_type, title in ((1, "HAENDLERBELEG"), (2, "KUNDENBELEG")):
            lines = self._receipt_lines(txn, title)
            if self.text_blocks:
                texts = b"".join(encode_tlv(0x07, line.encode(codec.ENCODING)) for line in lines)
                body = encode_tlv(0x1F07, bytes((receipt_type,))) + encode_tlv(0x25, texts)
                body += encode_tlv(0x09, b"\x81")
                data = b"\x06" + encode_ber_length(len(body)) + body
                self._send(conn, Apdu(0x06, 0xD3, data))
            else:
                tag = b"\x06\x04" + encode_tlv(0x1F07, bytes((receipt_type,)))
                for n, line in enumerate(lines):
                    attribute = 0x81 if n == len(lines) - 1 else 0x00
                    data = bytes((attribute,)) + line.encode(codec.ENCODING) + tag
                    self._send(conn, Apdu(0x06, 0xD1, data))

    def _status_info(self, txn: Transaction) -> Apdu:
        now = txn.when
        data = bytes((0x27, txn.result))
        data += b"\x04" + codec.bcd(txn.amount, 6)
        data += b"\x0b" + codec.bcd(txn.trace, 3)
        data += b"\x0c" + bytes.fromhex(f"{now:%H%M%S}") + b"\x0d" + bytes.fromhex(f"{now:%m%d}")
        data += b"\x0e\x29\x12"  # expiry date: card data the register must drop
        data += b"\x22" + encode_var(bytes.fromhex("6725eeeeeeee4821"), 2)  # masked number
        data += b"\x29" + bytes.fromhex(self.terminal_id)
        data += b"\x2a" + b"100461763      "
        data += b"\x3b" + txn.approval.encode().ljust(8, b"\x00")
        text = "Zahlung erfolgt" if txn.result == 0 else "Abgelehnt"
        data += b"\x3c" + encode_var(text.encode(codec.ENCODING), 3)
        data += b"\x49" + codec.bcd(self.currency, 2)
        data += b"\x87" + codec.bcd(txn.receipt_no, 2)
        data += b"\x88" + codec.bcd(txn.trace, 3)
        data += b"\x8a\x05" + b"\x8b" + encode_var(b"girocard\x00", 2)
        return Apdu(0x04, 0x0F, data)

    def _new(self, kind: str, amount: int, result: int = 0) -> Transaction:
        with self._lock:
            txn = Transaction(self.next_receipt, kind, amount, self.next_trace, result)
            self.next_receipt += 1
            self.next_trace += 1
            txn.approval = f"{600000 + txn.trace}" if result == 0 else ""
            self.journal.append(txn)
            if result == 0:
                self.batch.append(txn)
        return txn

    # ------------------------------------------------------------ commands

    def _ack_only(self, conn: _Conn, data: bytes) -> None:
        conn.write(Apdu(0x80, 0x00))

    def _log_off(self, conn: _Conn, data: bytes) -> None:
        self.registered = False
        conn.write(Apdu(0x80, 0x00))

    def _registration(self, conn: _Conn, data: bytes) -> None:
        if not self._check_password(conn, data):
            return
        config = data[3] if len(data) > 3 else 0
        currency = codec.from_bcd(data[4:6]) if len(data) >= 6 else self.currency
        conn.write(Apdu(0x80, 0x00))
        if currency != self.currency:
            self._send(conn, Apdu(0x06, 0x1E, bytes((0x6F,))))
            return
        self.config_byte = config
        self.text_blocks = b"\x0a\x02\x06\xd3" in data[6:] and not self.lines_only
        self.registered = True
        self._send(conn, Apdu(0x06, 0x0F, b"\x29" + bytes.fromhex(self.terminal_id)))

    def _fields(self, data: bytes) -> dict:
        return codec.parse_bmps(data)

    def _authorization(self, conn: _Conn, data: bytes) -> None:
        with self._lock:
            plan = self.plans.pop(0) if self.plans else "approve"
        fields = self._fields(data)
        amount = codec.from_bcd(fields[0x04])
        if plan == "nack":
            conn.write(Apdu(0x84, 0x9C))
            return
        conn.write(Apdu(0x80, 0x00))
        if not self.registered:
            self._send(conn, Apdu(0x06, 0x1E, bytes((0x6B,))))
            return
        if 0x49 in fields and codec.from_bcd(fields[0x49]) != self.currency:
            self._send(conn, Apdu(0x06, 0x1E, bytes((0x6F,))))
            return
        if self._status(conn, 0x0A) or self._pause(conn):  # insert card
            self._send(conn, Apdu(0x06, 0x1E, bytes((codec.ABORTED,))))
            return
        if plan == "drop":
            raise Dropped
        if plan == "silent":
            time.sleep(3600)
            return
        if plan == "timeout":  # the customer walked away: wait for the register's abort
            while True:
                reply = conn.read(3600)
                self.commands.append(reply.command.hex())
                if reply.command == b"\x06\xb0":
                    conn.write(Apdu(0x80, 0x00))
                    self._send(conn, Apdu(0x06, 0x1E, bytes((codec.ABORTED,))))
                    return
        if plan == "abort":
            self._send(conn, Apdu(0x06, 0x1E, bytes((codec.ABORTED,))))
            return
        if self._status(conn, 0x01) or self._pause(conn):  # PIN
            self._send(conn, Apdu(0x06, 0x1E, bytes((codec.ABORTED,))))
            return
        self._status(conn, 0x04)  # waiting for the host: no abort from here on
        self._pause(conn)
        if plan == "decline":
            txn = self._new("payment", amount, 0x05)
            self._send(conn, self._status_info(txn))
            self._status(conn, 0x4B)
            self._send(conn, Apdu(0x06, 0x1E, bytes((0x05,))))
            return
        txn = self._new("payment", amount)
        if plan == "drop_after_approval":
            raise Dropped
        self._send(conn, self._status_info(txn))
        self._status(conn, 0x4B)  # remove card
        self._print(conn, txn)
        self._send(conn, Apdu(0x06, 0x0F))

    def _begin_refund(self, conn: _Conn, data: bytes) -> tuple[dict, str] | None:
        """A reversal's or refund's start: the password, the planned outcome, and the
        ACK (or a NAK when so planned). None when the command ends there."""
        if not self._check_password(conn, data):
            return None
        fields = self._fields(data[3:])
        plan = self._refund_plan()
        if plan == "nack":
            conn.write(Apdu(0x84, 0x9C))
            return None
        conn.write(Apdu(0x80, 0x00))
        return fields, plan

    def _reversal(self, conn: _Conn, data: bytes) -> None:
        begun = self._begin_refund(conn, data)
        if begun is None:
            return
        fields, plan = begun
        if plan in ("not_possible", "decline"):
            self._send(conn, Apdu(0x06, 0x1E, bytes((0xB5,))))  # reversal not possible
            return
        if plan == "abort":
            self._send(conn, Apdu(0x06, 0x1E, bytes((codec.ABORTED,))))
            return
        with self._lock:
            if 0x87 in fields:
                number = codec.from_bcd(fields[0x87])
                found = [t for t in self.journal if t.receipt_no == number]
            else:
                found = [t for t in self.journal if t.kind == "payment"][-1:]
            original = found[0] if found else None
        if original is None or original.kind != "payment" or original.result != 0:
            self._send(conn, Apdu(0x06, 0x1E, bytes((0xB5,))))  # reversal not possible
            return
        if original.reversed:
            self._send(conn, Apdu(0x06, 0x1E, bytes((0xB4,))))  # already reversed
            return
        if original not in self.batch:  # settled at end of day: a refund is needed now
            self._send(conn, Apdu(0x06, 0x1E, bytes((0xB5,))))
            return
        original.reversed = True
        txn = self._new("reversal", original.amount)
        if plan == "drop_after_approval":
            raise Dropped
        self._send(conn, self._status_info(txn))
        self._print(conn, txn)
        self._send(conn, Apdu(0x06, 0x0F))

    def _refund(self, conn: _Conn, data: bytes) -> None:
        begun = self._begin_refund(conn, data)
        if begun is None:
            return
        fields, plan = begun
        if self._status(conn, 0x0A) or self._pause(conn) or plan == "abort":  # insert card
            self._send(conn, Apdu(0x06, 0x1E, bytes((codec.ABORTED,))))
            return
        amount = codec.from_bcd(fields[0x04])
        if plan in ("decline", "not_possible"):
            txn = self._new("refund", amount, 0x05)
            self._send(conn, self._status_info(txn))
            self._send(conn, Apdu(0x06, 0x1E, bytes((0x05,))))
            return
        txn = self._new("refund", amount)
        if plan == "drop_after_approval":
            raise Dropped
        self._send(conn, self._status_info(txn))
        self._print(conn, txn)
        self._send(conn, Apdu(0x06, 0x0F))

    def _end_of_day(self, conn: _Conn, data: bytes) -> None:
        if not self._check_password(conn, data):
            return
        conn.write(Apdu(0x80, 0x00))
        with self._lock:
            total = sum(
                t.amount * (-1 if t.kind == "refund" else 1)
                for t in self.batch
                if t.kind in ("payment", "refund") and not t.reversed
            )
            count = len(self.batch)
            self.batch = []
        data_out = b"\x27\x00" + b"\x04" + codec.bcd(max(total, 0), 6)
        data_out += b"\x29" + bytes.fromhex(self.terminal_id)
        self._send(conn, Apdu(0x04, 0x0F, data_out))
        if self.config_byte & codec.ECR_PRINTS_ADMIN:
            lines = ["Kassenschnitt", f"Terminal-ID: {self.terminal_id}", f"Umsaetze: {count}"]
            texts = b"".join(encode_tlv(0x07, line.encode()) for line in lines)
            body = encode_tlv(0x1F07, b"\x03") + encode_tlv(0x25, texts)
            self._send(conn, Apdu(0x06, 0xD3, b"\x06" + encode_ber_length(len(body)) + body))
        self._send(conn, Apdu(0x06, 0x0F))

    def _repeat(self, conn: _Conn, data: bytes) -> None:
        if not self._check_password(conn, data):
            return
        conn.write(Apdu(0x80, 0x00))
        with self._lock:
            last = self.journal[-1] if self.journal else None
        if last is None:
            self._send(conn, Apdu(0x06, 0x1E, bytes((0x83,))))
            return
        self._send(conn, self._status_info(last))
        self._print(conn, last)
        self._send(conn, Apdu(0x06, 0x0F))

    def _diagnosis(self, conn: _Conn, data: bytes) -> None:
        conn.write(Apdu(0x80, 0x00))
        self._send(conn, Apdu(0x04, 0x0F, b"\x27\x00\x29" + bytes.fromhex(self.terminal_id)))
        self._send(conn, Apdu(0x06, 0x0F))


def main() -> None:  # pragma: no cover - by hand: python -m kiosk.demo.terminal [port]
    import sys

    logging.basicConfig(level=logging.INFO)
    sim = TerminalSimulator(step_s=0.8, port=int(sys.argv[1]) if len(sys.argv) > 1 else 20007)
    sim.start()
    print(f"simulated ZVT terminal on 127.0.0.1:{sim.port} (password 000000, EUR)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sim.stop()


if __name__ == "__main__":
    main()
