"""A ZVT terminal driven from the kiosk (the register, "ECR"), over TCP or serial.

Each command: connect (and register) if needed, send the APDU, wait for the
terminal's acknowledgement (80 00 00), then acknowledge everything it sends:
intermediate status (04 FF: shown to the customer), print lines and text blocks
(06 D1, 06 D3: the receipt text we print), status information (04 0F: the result
and its references), until completion (06 0F) or abort (06 1E).

What cannot be known is said so: a link that drops, or a terminal that stays silent
after the request went out, gives outcome "unknown", never "declined", so the
checkout asks the terminal again (repeat receipt) or reverses before it forgets.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

from kiosk.drivers.payment import TerminalResult, Update, _quiet, mask_card_numbers
from kiosk.drivers.zvt import codec
from kiosk.drivers.zvt.codec import Apdu, Receipts, StatusInfo, ZvtError
from kiosk.drivers.zvt.transport import LinkError, LinkTimeout

log = logging.getLogger(__name__)
SLICE_S = 0.2  # how often a running command looks for an abort request
ACK = Apdu(0x80, 0x00)


class ZvtTerminal:
    kind = "zvt"

    def __init__(
        self,
        link,
        password: str = "000000",
        currency: int = 978,
        places: int = 2,
        ack_timeout: float = 5.0,
        idle_timeout: float = 120.0,
        ecr_prints: bool = True,
    ):
        codec.password_bytes(password)  # 6 digits, or refused now
        self.link = link
        self.password = password
        self.currency = currency
        self.places = places
        self.ack_timeout = ack_timeout
        self.idle_timeout = idle_timeout
        self.ecr_prints = ecr_prints
        self.registered = False
        self.terminal_id: str | None = None
        self.last_state = "not connected yet"
        self.last_at: datetime | None = None
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self._busy = False

    # ------------------------------------------------------------ the port

    def authorize(self, amount: Decimal, listener=_quiet) -> TerminalResult:
        apdu = codec.authorization(self._minor(amount), self.currency)
        return self._run("payment", apdu, listener, unknown_if_lost=True, money="amount")

    def reverse(self, receipt_no: str | None, listener=_quiet) -> TerminalResult:
        number = int(receipt_no) if receipt_no else None
        apdu = codec.reversal(self.password, number)
        return self._run("reversal", apdu, listener, unknown_if_lost=True, money="receipt")

    def refund(self, amount: Decimal, listener=_quiet) -> TerminalResult:
        apdu = codec.refund(self.password, self._minor(amount), self.currency)
        return self._run("refund", apdu, listener, unknown_if_lost=True, money="amount")

    def end_of_day(self, listener=_quiet) -> TerminalResult:
        return self._run("end of day", codec.end_of_day(self.password), listener)

    def last_transaction(self, listener=_quiet) -> TerminalResult:
        """The terminal's last transaction again (repeat receipt): how a restart learns
        whether a payment whose answer was lost went through."""
        return self._run("repeat receipt", codec.repeat_receipt(self.password), listener)

    def diagnose(self, listener=_quiet) -> TerminalResult:
        return self._run("diagnosis", codec.diagnosis(), listener)

    def register(self, listener=_quiet) -> TerminalResult:
        with self._lock:
            try:
                self.link.close()
                self.link.connect()
                return self._finish(self._register())
            except LinkError as exc:
                return self._finish(TerminalResult("failed", str(exc)))

    def log_off(self, listener=_quiet) -> TerminalResult:
        result = self._run("log-off", codec.log_off(), listener, ack_ends=True)
        self.registered = False
        return result

    def abort(self) -> None:
        """Ask a running command to stop (06 B0 is sent from the command's own thread).
        The terminal refuses once the card is being processed; the command then ends
        with whatever the terminal decides."""
        if self._busy:
            self._abort.set()

    def state(self) -> str:
        when = f" at {self.last_at.astimezone():%H:%M:%S}" if self.last_at else ""
        tid = f", TID {self.terminal_id}" if self.terminal_id else ""
        link = "registered" if self.registered and self.link.open else "not connected"
        return f"zvt {self.link.where}: {link}{tid}; last: {self.last_state}{when}"

    def close(self) -> None:
        with self._lock:
            self.link.close()
            self.registered = False

    # ------------------------------------------------------------ the exchange

    def _minor(self, amount: Decimal) -> int:
        value = Decimal(amount).scaleb(self.places)
        if value != value.to_integral_value() or value <= 0:
            raise ValueError(f"{amount} is not a positive amount in the currency's minor unit")
        return int(value)

    def _amount(self, minor: int | None) -> Decimal | None:
        return None if minor is None else Decimal(minor).scaleb(-self.places)

    def _ensure(self) -> None:
        if self.link.open and not self._alive():
            self.link.close()
        if not self.link.open:
            self.registered = False
            self.link.connect()
        if not self.registered:
            result = self._register()
            if not result.approved:
                raise LinkError(f"registration refused: {result.message}")

    def _alive(self) -> bool:
        alive = getattr(self.link, "alive", None)
        return alive() if callable(alive) else True

    def _register(self) -> TerminalResult:
        config = codec.ECR_WANTS_STATUS | codec.ECR_CONTROLS_PAYMENT | codec.ECR_CONTROLS_ADMIN
        if self.ecr_prints:
            config |= codec.ECR_PRINTS_PAYMENT | codec.ECR_PRINTS_ADMIN | codec.ECR_PRINT_TYPE
        apdu = codec.registration(self.password, config, self.currency)
        # Registration is quick: a terminal that streams instead does not hold it long.
        limit = min(self.idle_timeout, self.ack_timeout * 2)
        result = self._exchange("registration", apdu, _quiet, unknown_if_lost=False, limit=limit)
        self.registered = result.approved
        return result

    def _run(self, what, apdu, listener, unknown_if_lost=False, ack_ends=False, money=None):
        with self._lock:
            self._abort.clear()
            self._busy = True
            try:
                try:
                    self._ensure()
                except LinkError as exc:  # nothing was sent: nothing happened
                    self.link.close()
                    return self._finish(TerminalResult("failed", str(exc)))
                result = self._exchange(what, apdu, listener, unknown_if_lost, ack_ends, money)
                return self._finish(result)
            finally:
                self._busy = False

    def _finish(self, result: TerminalResult) -> TerminalResult:
        self.last_state = f"{result.outcome} ({result.message})"
        self.last_at = datetime.now(UTC)
        return result

    def _send(self, apdu: Apdu) -> None:
        log.debug("ECR -> PT %s (%d bytes)", apdu.command.hex(), len(apdu.data))
        self.link.send(apdu)

    def _exchange(
        self, what, apdu, listener, unknown_if_lost=False, ack_ends=False, money=None, limit=None
    ):
        """Send one command and follow it to its end. Runs with the lock held.
        `money`: the command moves money ("amount": authorization, refund; "receipt":
        reversal), so only a parsed status with result 00, a receipt number (and the
        amount) approves it; anything less is "unknown". `limit`: the whole command's
        time (default the payment timeout), whatever the terminal keeps sending."""
        lost = "unknown" if unknown_if_lost else "failed"
        try:
            self._send(apdu)
            first = self.link.receive(self.ack_timeout)
        except LinkTimeout as exc:
            self.link.close()
            return TerminalResult(lost, f"{what}: the terminal did not acknowledge ({exc})")
        except LinkError as exc:
            return TerminalResult(lost, f"{what}: {exc}")
        if first.cls == 0x84:  # negative acknowledgement: refused, nothing done
            code = first.ins
            return TerminalResult("failed", f"{what} refused: {codec.result_text(code)}", code)
        if ack_ends and first.command == b"\x80\x00":
            return TerminalResult("approved", f"{what} done")
        pending = [] if first.command == b"\x80\x00" else [first]
        result = self._follow(what, listener, pending, lost, limit or self.idle_timeout)
        return self._checked(what, result, money, lost)

    def _checked(self, what, result, money, lost) -> TerminalResult:
        """A money command is approved only with the references a reversal needs."""
        if money is None or not result.approved:
            return result
        missing = None
        if result.receipt_no is None:
            missing = "no receipt number"
        elif money == "amount" and result.amount is None:
            missing = "no amount"
        if missing is None:
            return result
        log.warning("%s: the terminal said approved with %s: not known", what, missing)
        return TerminalResult(
            "unknown",
            f"{what}: the terminal said approved but sent {missing}",
            code=result.code,
            amount=result.amount,
            terminal_id=result.terminal_id,
        )

    def _follow(self, what, listener, pending, lost, limit) -> TerminalResult:
        status: StatusInfo | None = None
        bad_status = False  # a status we could not read: its result is not known
        receipts = Receipts()
        lines: list[str] = []
        line_type: int | None = None
        abort_sent = False
        started = time.monotonic()
        abort_at = None
        while True:
            if pending:
                message = pending.pop(0)
            else:
                now = time.monotonic()
                if abort_sent and now - abort_at > self.ack_timeout * 2:
                    # The abort did not end it: the whole command is bounded, whatever
                    # the terminal keeps sending. What happened to the money is not known.
                    self.link.close()
                    return TerminalResult(lost, f"{what}: the terminal stopped answering in time")
                if not abort_sent and (self._abort.is_set() or now - started > limit):
                    abort_sent, abort_at = True, now
                    self._abort_now()
                try:
                    message = self.link.receive(SLICE_S)
                except LinkTimeout:
                    continue
                except LinkError as exc:
                    return self._lost(what, status, lost, exc, bad_status)
            command = message.command
            log.debug("PT -> ECR %s (%d bytes)", command.hex(), len(message.data))
            try:
                if command in (b"\x80\x00", b"\x84\x00") or message.cls == 0x84:
                    continue  # the answer to our abort
                self._send(ACK)
                if command == b"\x04\xff":
                    info = codec.parse_intermediate(message.data)
                    listener(Update("status", info.kind, info.texts))
                elif command == b"\x06\xd1":
                    line = codec.parse_print_line(message.data)
                    lines.append(line.text)
                    line_type = line.receipt_type or line_type
                    if line.last:
                        receipts.add(line_type, lines)
                        listener(Update("print", texts=tuple(lines)))
                        lines, line_type = [], None
                elif command == b"\x06\xd3":
                    block = codec.parse_print_block(message.data)
                    receipts.add(block.receipt_type, block.lines)
                    listener(Update("print", texts=block.lines))
                elif command == b"\x04\x0f":
                    status = None  # a bad one replaces what an earlier one said
                    bad_status = True
                    status = codec.parse_status(message.data)
                    bad_status = False
                    if status.terminal_id:
                        self.terminal_id = status.terminal_id
                elif command == b"\x06\x0f":
                    self._completion_fields(message.data)
                    if lines:
                        receipts.add(line_type, lines)
                    if bad_status:
                        return TerminalResult(lost, f"{what}: the terminal's result was unreadable")
                    return self._completed(what, status, receipts)
                elif command == b"\x06\x1e":
                    code = message.data[0] if message.data else None
                    if bad_status or (status is not None and status.result == 0):
                        # "approved" then "aborted", or a result we could not read
                        return TerminalResult(
                            lost, f"{what}: the terminal's answers contradict each other"
                        )
                    return self._aborted(what, status, code, abort_sent, receipts)
                else:
                    log.info(
                        "terminal sent %s during %s: acknowledged, ignored", command.hex(), what
                    )
            except ZvtError as exc:
                log.warning("terminal sent a bad %s: %s", command.hex(), mask_card_numbers(exc))
            except LinkError as exc:
                return self._lost(what, status, lost, exc, bad_status)

    def _completion_fields(self, data: bytes) -> None:
        """A completion may carry the terminal id (registration does) and more."""
        if not data:
            return
        try:
            tid = codec.parse_bmps(data).get(0x29)
        except ZvtError:
            return
        if isinstance(tid, bytes):
            self.terminal_id = tid.hex()

    def _abort_now(self) -> None:
        try:
            self._send(codec.abort())
        except LinkError as exc:
            log.warning("abort could not be sent: %s", exc)

    def _lost(self, what, status, lost, exc, bad_status=False) -> TerminalResult:
        if (
            not bad_status
            and status is not None
            and status.result == 0
            and status.receipt_no is not None
        ):
            # The result came before the link dropped: it is known.
            return self._result("approved", f"{what} approved", status, Receipts())
        return TerminalResult(lost, f"{what}: {exc}")

    def _result(self, outcome, message, status, receipts, code=None) -> TerminalResult:
        s = status or StatusInfo()
        return TerminalResult(
            outcome=outcome,
            message=message,
            code=code if code is not None else (s.result if status else None),
            amount=self._amount(s.amount),
            receipt_no=None if s.receipt_no is None else f"{s.receipt_no:04d}",
            trace=None if s.trace is None else f"{s.trace:06d}",
            terminal_id=s.terminal_id,
            approval=s.approval,
            card_name=s.card_name,
            customer_receipt=tuple(receipts.customer),
            merchant_receipt=tuple(receipts.merchant),
            admin_receipt=tuple(receipts.administration),
        )

    def _completed(self, what, status, receipts) -> TerminalResult:
        if status is not None and status.result != 0:
            text = status.text or codec.result_text(status.result)
            return self._result("declined", f"{what}: {text}", status, receipts)
        return self._result("approved", f"{what} approved", status, receipts)

    def _aborted(self, what, status, code, abort_sent, receipts) -> TerminalResult:
        code = code if code is not None else (status.result if status else None)
        if code is None or code == codec.ABORTED or abort_sent:
            text = codec.result_text(code) if code is not None else "aborted"
            return self._result("aborted", f"{what} aborted: {text}", status, receipts, code)
        text = (status.text if status and status.text else None) or codec.result_text(code)
        return self._result("declined", f"{what}: {text}", status, receipts, code)
