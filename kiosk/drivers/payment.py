"""Payment terminals: the port the checkout talks to, the manual variant, and a job
runner so a payment at the terminal never blocks the checkout's thread.

A terminal call (authorize, reverse, refund, end of day, last transaction) runs
until the terminal answers, which may take as long as the customer does; it
reports what the terminal shows the customer as it goes (`Update`) and ends with a
`TerminalResult`. `outcome` says what happened to the money:

    approved   the terminal took the amount (references come with it)
    declined   refused by the card, the bank or the terminal: nothing taken
    aborted    stopped by the customer, by us, or by the terminal's timeout: nothing taken
    failed     never reached the terminal: nothing taken
    unknown    the request was out and the answer did not come back (the link
               dropped, the terminal went silent): it may or may not have been taken

A result carries only what the terminal hands back and nothing of the card but its
brand name: references (receipt, trace, terminal id, approval code) and receipt text.
Drivers never import the ledger: the checkout records requests and outcomes.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from kiosk import cardnumbers

log = logging.getLogger(__name__)
OUTCOMES = ("approved", "declined", "aborted", "failed", "unknown")
CARD_NUMBER = cardnumbers.CARD_NUMBER  # whatever a terminal's text holds, nothing
#                                        that looks like a card number is shown, logged or stored
MAX_TEXT = 200  # a terminal text kept for the screen, the log or the journal


def mask_card_numbers(text: str, limit: int | None = MAX_TEXT) -> str:
    """`text` with card numbers masked (kiosk.cardnumbers), cut to `limit` characters."""
    return cardnumbers.mask(text, limit)


class TerminalError(Exception):
    """A terminal that cannot be set up from the config (the message names the key)."""


@dataclass(frozen=True)
class Update:
    """Something to show while the terminal works: `kind` "status" (what the customer
    is asked to do: insert_card, pin, wait, processing, remove_card, approved, declined,
    not_accepted, wrong_pin) with the terminal's own `texts`, or "print" (receipt lines)."""

    kind: str
    status: str = ""
    texts: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "texts", tuple(mask_card_numbers(t, None) for t in self.texts))


@dataclass(frozen=True)
class TerminalResult:
    outcome: str
    message: str
    code: int | None = None
    amount: Decimal | None = None
    receipt_no: str | None = None  # the terminal's receipt number: what a reversal names
    trace: str | None = None
    terminal_id: str | None = None
    approval: str | None = None
    card_name: str | None = None  # the brand ("girocard", "Debit Mastercard"), not card data
    customer_receipt: tuple[str, ...] = ()
    merchant_receipt: tuple[str, ...] = ()
    admin_receipt: tuple[str, ...] = ()

    def __post_init__(self):  # the terminal's texts never carry a card number further
        object.__setattr__(self, "message", mask_card_numbers(self.message, 4 * MAX_TEXT))
        for name in ("customer_receipt", "merchant_receipt", "admin_receipt"):
            lines = tuple(mask_card_numbers(line, None) for line in getattr(self, name))
            object.__setattr__(self, name, lines)
        if self.card_name is not None:
            object.__setattr__(self, "card_name", mask_card_numbers(self.card_name, 40))

    @property
    def approved(self) -> bool:
        return self.outcome == "approved"

    @property
    def reference(self) -> str:
        """What a tender keeps: enough to find the payment on the terminal and to reverse it."""
        parts = [f"T{self.terminal_id or '?'}", f"R{self.receipt_no or '?'}"]
        if self.trace:
            parts.append(f"TR{self.trace}")
        if self.approval:
            parts.append(f"A{self.approval}")
        return " ".join(parts)


Listener = Callable[[Update], None]


def _quiet(_update: Update) -> None:
    pass


class PaymentTerminal(Protocol):
    kind: str  # "zvt", "manual"

    def authorize(self, amount: Decimal, listener: Listener = _quiet) -> TerminalResult: ...

    def reverse(self, receipt_no: str | None, listener: Listener = _quiet) -> TerminalResult: ...

    def refund(self, amount: Decimal, listener: Listener = _quiet) -> TerminalResult: ...

    def end_of_day(self, listener: Listener = _quiet) -> TerminalResult: ...

    def last_transaction(self, listener: Listener = _quiet) -> TerminalResult: ...

    def register(self) -> TerminalResult: ...

    def diagnose(self) -> TerminalResult: ...

    def log_off(self) -> TerminalResult: ...

    def abort(self) -> None: ...

    def state(self) -> str: ...

    def close(self) -> None: ...


class ManualTerminal:
    """A staffed till's terminal that the kiosk does not drive: the cashier reads the
    approval code off the terminal and types it (Checkout.tender_card with a reference)."""

    kind = "manual"

    def _manual(self, *_args, **_kw) -> TerminalResult:
        return TerminalResult("failed", "the terminal is not connected: type its approval code")

    authorize = reverse = refund = end_of_day = last_transaction = _manual
    register = diagnose = log_off = _manual

    def abort(self) -> None:
        pass

    def state(self) -> str:
        return "manual (approval codes typed by staff)"

    def close(self) -> None:
        pass


class TerminalJob:
    """One terminal call on its own thread. Updates and the result are queued for the
    checkout, which takes them on its own thread (`drain`); `notify` is called after
    each so the app can schedule that at once."""

    def __init__(
        self,
        purpose: str,
        call: Callable[..., Any],
        *args: Any,
        notify: Callable[[], None] | None = None,
        context: Any = None,
    ):
        self.purpose = purpose
        self.context = context
        self._call, self._args = call, args
        self._notify = notify
        self._queue: queue.Queue = queue.Queue()
        self.result: Any = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"terminal-{purpose}", daemon=True)

    def start(self) -> TerminalJob:
        self._thread.start()
        return self

    def _poke(self) -> None:
        if self._notify is not None:
            try:
                self._notify()
            except Exception:  # noqa: BLE001 - the app is going away: the queue keeps it
                log.exception("terminal notify failed")

    def _listen(self, update: Update) -> None:
        self._queue.put(update)
        self._poke()

    def _run(self) -> None:
        try:
            self.result = self._call(*self._args, self._listen)
        except Exception as exc:  # noqa: BLE001 - a driver bug must still end the job
            log.exception("terminal %s failed", self.purpose)
            self.result = TerminalResult("unknown", f"terminal driver error: {exc}")
        self.done.set()
        self._poke()

    def drain(self) -> list[Update]:
        updates = []
        while True:
            try:
                updates.append(self._queue.get_nowait())
            except queue.Empty:
                return updates

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


def make_terminal(config, demo_port: int | None = None) -> PaymentTerminal:
    """The terminal of `[payment]`; with `demo_port`, a ZVT driver to the demo's simulated
    terminal on 127.0.0.1."""
    payment = config.payment
    if demo_port is None and payment.kind == "manual":
        return ManualTerminal()
    from kiosk.drivers.zvt.codec import CURRENCIES  # noqa: PLC0415
    from kiosk.drivers.zvt.driver import ZvtTerminal  # noqa: PLC0415
    from kiosk.drivers.zvt.transport import SerialLink, TcpLink  # noqa: PLC0415

    currency = payment.currency or config.money.currency
    number = payment.currency_code or CURRENCIES.get(currency)
    if number is None:
        raise TerminalError(
            f"[payment] currency {currency}: its ISO 4217 number is not known here; "
            "set [payment] currency_code"
        )
    if demo_port is not None:
        link = TcpLink("127.0.0.1", demo_port, payment.connect_timeout_s)
    elif payment.serial:
        link = SerialLink(payment.serial, payment.baudrate, payment.connect_timeout_s)
    else:
        link = TcpLink(payment.host, payment.port, payment.connect_timeout_s)
    places = max(0, -config.money.minor_unit.as_tuple().exponent)
    return ZvtTerminal(
        link,
        password=payment.password,
        currency=number,
        places=places,
        ack_timeout=payment.ack_timeout_s,
        idle_timeout=payment.payment_timeout_s,
        ecr_prints=not payment.terminal_prints,
    )
