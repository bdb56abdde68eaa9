"""Checkout: one kiosk's session state machine.

    attract -> scanning -> paying -> receipt -> attract
    any state -> help (call staff) -> back where it was
    staff login (PIN or badge) from any state; the staff menu opens returns, voids,
    counts, receiving and kit assembly

Every UI action is a method returning an `Outcome` (never raising for a user's
mistake); every change is announced to subscribers as an `Event`. Nothing is
posted before payment is complete; after the commit, printing and the drawer go
through small ports, and their faults never undo the sale.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from kiosk import numbers
from kiosk.checkout.cart import Cart, CartLine
from kiosk.checkout.flows import (
    Approval,
    CountFlow,
    KitFlow,
    PendingPayment,
    ReceivingFlow,
    ReturnFlow,
)
from kiosk.documents import TextReport
from kiosk.drivers.base import (
    CashDrawer,
    DrawerError,
    MemoryDrawer,
    MemoryPrinter,
    PrinterError,
    ReceiptPrinter,
)
from kiosk.drivers.payment import ManualTerminal, PaymentTerminal, TerminalJob, TerminalResult
from kiosk.ledger import audit, catalog, payments, receipts, reports, sales, stock
from kiosk.ledger import staff as staff_service
from kiosk.ledger.barcodes import BarcodeError, Parsed, ReceiptRef, StaffBadge
from kiosk.ledger.core import Ledger, LedgerError, StorageFullError
from kiosk.ledger.models import Staff, utc_now
from kiosk.ledger.money import CASH, ZERO, MoneyError, Tender, round_cash, settle
from kiosk.ledger.posting import Posted
from kiosk.report_text import money, z_report_lines


class State(StrEnum):
    ATTRACT = "attract"
    SCANNING = "scanning"
    PAYING = "paying"
    RECEIPT = "receipt"
    HELP = "help"
    STAFF_MENU = "staff_menu"
    RETURNING = "returning"
    COUNTING = "counting"
    RECEIVING = "receiving"
    KIT = "kit"


CUSTOMER_STATES = (State.ATTRACT, State.SCANNING, State.PAYING, State.RECEIPT, State.HELP)
STAFF_STATES = (State.STAFF_MENU, State.RETURNING, State.COUNTING, State.RECEIVING, State.KIT)
SUPERVISOR = ("supervisor",)
_FULL_COUNT = (
    f"A count holds at most {numbers.MAX_EVENT_LINES} items: finish it, then start another"
)
_TOO_MUCH = f"A sale can total at most {numbers.MAX_MONEY}: pay for this part first"
MAX_REFERENCE = 48  # characters of a typed approval reference (the journal's own limit)
PROBE_EVERY_S = 30  # a full disk is probed for space this often (16 KiB written each time)
SETTLE_EVERY_S = 30  # an unsettled card payment is asked about again this often
ANY_STAFF = ("cashier", "supervisor", "technician")
SELLING_STAFF = ("cashier", "supervisor")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    kind: str  # state, cart, payment, message, alert, printed, drawer, staff, posted
    state: State
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class CardRefund:
    """One card part of a refund: what goes back to one card payment of the original
    sale, by reversal (same day, before the terminal's end of day, the whole payment)
    or by refund (the customer presents the card)."""

    original: int  # the authorize row in the payment journal
    amount: Decimal
    receipt_no: str | None  # the original's terminal receipt: what a reversal names
    reverse: bool
    row: int | None = None  # the journal row of the refund or reversal being made
    reference: str | None = None  # set once the terminal approved it


@dataclass
class PendingRefund:
    """A return, exchange or void waiting for its card refunds at the terminal. It is
    posted once every card part is approved; `request` is journaled with each refund
    row, so a restart can post it (payments.request_of)."""

    kind: str  # return, exchange, void
    receipt: str | None
    amount: Decimal  # the whole refund, positive
    request: dict[str, Any]
    others: list[Tender]  # the tenders not paid out by the terminal (cash, voucher, ...)
    parts: list[CardRefund]
    group: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


class _RefundBlocked(Exception):
    """A card refund cannot be planned now (an earlier one is not settled)."""


def _decimal(
    value: object, what: str, maximum=numbers.MAX_MONEY, places=numbers.MAX_PLACES
) -> Decimal:
    """A number a person typed, zero or more, within the documented bounds (kiosk.numbers)."""
    return numbers.decimal(value, what, minimum=0, maximum=maximum, places=places)


def _quantity(value: object) -> Decimal:
    """A quantity as typed, before the line's unit is known: pieces or kg."""
    return _decimal(value, "quantity", numbers.MAX_WEIGHT, numbers.WEIGHT_PLACES)


class Checkout:
    def __init__(
        self,
        ledger: Ledger,
        printer: ReceiptPrinter | None = None,
        drawer: CashDrawer | None = None,
        clock: Callable[[], datetime] = utc_now,
        log: Callable[[dict], None] | None = None,
        terminal: PaymentTerminal | None = None,
    ):
        self.ledger = ledger
        self.config = ledger.config
        self.role = ledger.config.device.role
        self.printer = printer if printer is not None else MemoryPrinter()
        self.drawer = drawer if drawer is not None else MemoryDrawer()
        self.clock = clock
        self.log = log
        self.state = State.ATTRACT
        self.cart = Cart(ledger.policy)
        self.staff: Staff | None = None
        self.payment = PendingPayment()
        self.message = self._welcome()
        self.alerts: list[str] = []
        self.last_posted: Posted | None = None
        self.lookup_results: list[tuple[str, str, Decimal]] = []
        self.pending: Approval | None = None
        self.help_from: State | None = None
        self.next_qty: Decimal | None = None
        self.returning: ReturnFlow | None = None
        self.counting: CountFlow | None = None
        self.receiving: ReceivingFlow | None = None
        self.kit: KitFlow | None = None
        self.storage_full: str | None = None  # why sales cannot be recorded now
        self._probed_at: datetime | None = None
        self.last_activity = clock()
        self._subscribers: list[Callable[[Event], None]] = []
        # The card terminal: its running call, what it shows the customer, its receipts
        self.terminal = terminal if terminal is not None else ManualTerminal()
        self.terminal_job: TerminalJob | None = None
        self.terminal_status: str | None = None  # a kiosk.strings "terminal_<status>" key
        self.terminal_texts: tuple[str, ...] = ()  # the terminal's own words, as sent
        self.terminal_notify: Callable[[], None] | None = None  # the app: poll me now
        self.card_blocked: str | None = None  # a card payment not settled yet: why
        self._slips: list[tuple[str, ...]] = []  # the terminal's customer receipts to print
        self._settle_at: datetime | None = None
        self.refunding: PendingRefund | None = None  # a refund waiting for the terminal
        self.payments_view: list[str] = []  # the staff menu's list of unsettled payments
        self.terminal_simulator: Any = None  # kiosk replay --terminal sim: its simulator

    # ------------------------------------------------------------ observing

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        self._subscribers.append(callback)

    def _emit(self, kind: str, /, **detail) -> None:
        event = Event(kind, self.state, detail)
        for callback in list(self._subscribers):
            callback(event)

    def _to(self, state: State) -> None:
        if state != self.state:
            previous = self.state
            self.state = state
            self._emit("state", previous=previous.value)

    def _ok(self, message: str, **data) -> Outcome:
        self.message = message
        self._emit("message", text=message, ok=True)
        return Outcome(True, message, data)

    def _no(self, message: str, **data) -> Outcome:
        self.message = message
        self._emit("message", text=message, ok=False)
        return Outcome(False, message, data)

    def _storage_failed(self, exc: StorageFullError) -> None:
        """The ledger's disk is full: keep the cart, tell staff, take no new sales."""
        if self.storage_full is None:
            self._alert(f"Storage full, sales cannot be recorded; the open cart is kept. {exc}")
        self.storage_full = str(exc)

    def _probe_storage(self) -> None:
        """While the disk is full, look for space again every PROBE_EVERY_S seconds."""
        now = self.clock()
        if self._probed_at is None or (now - self._probed_at).total_seconds() >= PROBE_EVERY_S:
            self._probed_at = now
            self._storage_ok()

    def _storage_ok(self) -> bool:
        """False while the disk is still full (a real write is tried to find out)."""
        if self.storage_full is None:
            return True
        if not self.ledger.writable():
            return False
        self.storage_full = None
        self._emit("message", text="Storage has space again: selling resumes")
        return True

    def _alert(self, text: str) -> None:
        self.alerts.append(text)
        self._emit("alert", text=text)

    def _record(self, entry: dict) -> None:
        self.last_activity = self.clock()
        if self.log is not None:
            self.log(entry)

    def _welcome(self) -> str:
        if self.role == "self-checkout":
            return "Scan an item to start"
        return "Staff login needed"

    # ------------------------------------------------------------ views

    @property
    def totals(self):
        return self.cart.priced()

    def _typed_money(self, value: object, what: str) -> Decimal:
        """An amount a person typed, in the currency's minor unit (kiosk.numbers)."""
        return numbers.money(value, what, self.ledger.policy.unit)

    @property
    def amount_due(self) -> Decimal:
        """What is still to pay, before cash rounding."""
        base = self._payable_total()
        paid = sum((t.amount for t in self.payment.tenders if t.kind != CASH), ZERO)
        cash = sum((t.amount for t in self.payment.tenders if t.kind == CASH), ZERO)
        return base - paid - cash

    def _payable_total(self) -> Decimal:
        if self.payment.kind == "exchange" and self.payment.exchange is not None:
            return self._exchange_preview(self.payment.exchange)
        return self.cart.priced().total

    def _too_much(self, more: Decimal) -> bool:
        """Would the sale's total pass what one sale may total (kiosk.numbers)?"""
        return self.cart.priced().total + more > numbers.MAX_MONEY

    def between_sales(self, action: Callable[[], object]) -> Outcome:
        """Run `action` (e.g. applying a new item master version) only while no sale is
        open: a cart keeps the prices it was scanned at until it is paid or abandoned."""
        if self.cart or self.state not in (State.ATTRACT, State.RECEIPT):
            return Outcome(False, "a sale is open")
        action()
        return Outcome(True, "")

    def snapshot(self) -> dict[str, Any]:
        """Plain data for screens and tests."""
        cart = self.cart.priced()
        return {
            "state": self.state.value,
            "staff": self.staff.code if self.staff else None,
            "lines": [
                {
                    "line": n,
                    "sku": li.sku,
                    "name": li.name,
                    "qty": str(li.qty),
                    "total": str(pl.total),
                    "approved": li.approved,
                }
                for n, (li, pl) in enumerate(zip(self.cart.lines, cart.lines, strict=True), 1)
            ],
            "total": str(cart.total),
            "tax": str(cart.tax),
            "due": self._due_text() if self.state == State.PAYING else None,
            "message": self.message,
            "alerts": list(self.alerts),
            "storage_full": self.storage_full,
            "last_receipt": self.last_posted.number if self.last_posted else None,
            "change": str(self.last_posted.change) if self.last_posted else None,
            "lookup": [
                {"sku": sku, "name": name, "price": str(price)}
                for sku, name, price in self.lookup_results
            ],
            "returning": {
                "receipt": self.returning.receipt,
                "lines": [f"{li.qty} x {li.sku} ({li.condition})" for li in self.returning.lines],
                "exchange": [li.name for li in self.returning.sold],
            }
            if self.returning
            else None,
            "counted": dict(self.counting.counted) if self.counting else None,
            "received": dict(self.receiving.received) if self.receiving else None,
            "kit": {"sku": self.kit.sku, "name": self.kit.name} if self.kit else None,
            "pending_approval": self.pending.reason if self.pending else None,
            "terminal": {
                "kind": self.terminal.kind,
                "busy": self.terminal_job is not None,
                "status": self.terminal_status,
                "texts": list(self.terminal_texts),
            },
            "card_blocked": self.card_blocked,
            "refund": {
                "kind": self.refunding.kind,
                "receipt": self.refunding.receipt,
                "amount": str(self.refunding.amount),
                "card": [
                    {"amount": str(p.amount), "done": p.reference is not None}
                    for p in self.refunding.parts
                ],
            }
            if self.refunding
            else None,
            "payments": list(self.payments_view),
        }

    def refresh(self) -> Outcome:
        """Nothing changes: the screens ask for the current state."""
        return Outcome(True, self.message)

    # ------------------------------------------------------------ scanning

    def scan(self, code: str) -> Outcome:
        """A barcode from the scanner: routed by what the kiosk is doing."""
        self._record({"scan": code})
        try:
            parsed = self.ledger.parser.parse(code)
        except BarcodeError as exc:
            return self._no(f"Cannot read that barcode ({exc.reason}). Try again or call staff.")
        if isinstance(parsed, StaffBadge):
            return self._badge(parsed.code)
        if isinstance(parsed, ReceiptRef):
            return self._receipt_scan(parsed.number)
        if self.state == State.COUNTING:
            return self._count_scan(parsed)
        if self.state == State.RECEIVING:
            return self._receive_scan(parsed)
        if self.state == State.KIT:
            return self._no("Scan kits from the staff menu: choose kit assembly first")
        if self.state == State.RETURNING:
            return self._return_scan(parsed)
        return self._sale_scan(parsed)

    def _selling_allowed(self) -> str | None:
        if self.state in (State.PAYING, State.RECEIPT):
            return "Finish the payment first"
        if self.state == State.STAFF_MENU:
            return "Leave the staff menu to sell"
        if self.role != "self-checkout" and not self.staff:
            return "Staff login needed to sell at this till"
        if self.role == "mobile-cart" and not self.config.checkout.cart_tendering:
            return "This cart does not sell: use item lookup, counts or receiving"
        if not self.cart and not self._storage_ok():
            return "This kiosk cannot record sales now (storage full). Please call staff."
        return None

    def _sale_scan(self, parsed: Parsed) -> Outcome:
        refusal = self._selling_allowed()
        if refusal:
            return self._no(refusal)
        try:
            scanned = catalog.resolve_scan(parsed)
        except LedgerError as exc:
            return self._no(f"{_sentence(exc)}. Look it up by name or call staff.")
        qty = scanned.qty
        if self.next_qty is not None and scanned.amount is None and scanned.item.unit == "each":
            qty *= self.next_qty
        self.next_qty = None
        return self._add_line(scanned.item, qty, scanned.barcode, scanned.amount, scanned.lot)

    def _add_line(self, item, qty, barcode=None, amount=None, lot=None) -> Outcome:
        skus = {li.sku for li in self.cart.lines}
        if item.sku not in skus and len(skus) >= numbers.MAX_EVENT_LINES:
            return self._no(f"A sale holds at most {numbers.MAX_EVENT_LINES} different items")
        existing = sum((li.qty for li in self.cart.lines if li.sku == item.sku), ZERO)
        try:
            numbers.cart_quantity(qty + existing if amount is None else qty, item.unit)
        except ValueError as exc:
            return self._no(_sentence(exc))
        if self._too_much(amount if amount is not None else qty * item.price):
            return self._no(_TOO_MUCH)
        line = CartLine.from_item(item, qty, barcode, amount, lot)
        needs_check = not line.approved
        number = self.cart.add(line)
        if self.state in (State.ATTRACT, State.HELP):
            self._to(State.SCANNING)
        total = self.cart.priced().total
        self._emit("cart", line=number, total=str(total))
        shown = self.cart.line(number)
        text = f"{shown.name} x {_qty(shown)}: total {money(total, self.config)}"
        if needs_check:
            text += f" (age {item.min_age}+: staff will check)"
        return self._ok(text, line=number, total=total)

    def quantity(self, qty: object) -> Outcome:
        """Quantity entry: the last line's quantity, or a multiplier for the next scan."""
        self._record({"qty": str(qty)})
        try:
            value = _quantity(qty)
        except ValueError as exc:
            return self._no(_sentence(exc))
        if value <= 0 or value > numbers.MAX_PIECES:
            return self._no(f"Quantity must be between 1 and {numbers.MAX_PIECES}")
        if not self.cart or self.state != State.SCANNING:
            if value != value.to_integral_value():
                return self._no("The next scan counts whole pieces")
            self.next_qty = value
            return self._ok(f"Next scan counts {value} times")
        return self._set_qty(len(self.cart.lines), value)

    def set_quantity(self, line: int, qty: object) -> Outcome:
        self._record({"set_qty": {"line": line, "qty": str(qty)}})
        try:
            value = _quantity(qty)
            current = self.cart.line(line)
        except (ValueError, IndexError) as exc:
            return self._no(_sentence(exc))
        if value <= 0:
            return self.remove_line(line)
        if value < current.qty and self._needs_staff_to_reduce():
            return self._ask_staff("set_quantity", (line, value), ANY_STAFF, "Lowering a quantity")
        return self._set_qty(line, value)

    def _set_qty(self, line: int, value: Decimal) -> Outcome:
        current = self.cart.line(line)
        if current.unit == "each" and value != value.to_integral_value():
            return self._no(f"{current.name} is sold by the piece")
        try:
            numbers.cart_quantity(value, current.unit)
        except ValueError as exc:
            return self._no(_sentence(exc))
        if current.amount is None and self._too_much((value - current.qty) * current.price):
            return self._no(_TOO_MUCH)
        if current.amount is not None:
            return self._no("A priced label cannot change quantity; scan it again")
        self.cart.update(line, qty=value)
        total = self.cart.priced().total
        self._emit("cart", line=line, total=str(total))
        return self._ok(f"{current.name} x {value}: total {money(total, self.config)}")

    def _needs_staff_to_reduce(self) -> bool:
        return self.role == "self-checkout" and self.staff is None

    def remove_line(self, line: int) -> Outcome:
        self._record({"remove": line})
        try:
            current = self.cart.line(line)
        except IndexError as exc:
            return self._no(str(exc))
        if self.state != State.SCANNING:
            return self._no("Lines can only be removed while scanning")
        if self._needs_staff_to_reduce():
            return self._ask_staff("remove_line", (line,), ANY_STAFF, "Removing an item")
        self.cart.remove(line)
        audit.record("line_removed", self._staff_code(), current.sku, "qty", current.qty, 0)
        total = self.cart.priced().total
        self._emit("cart", removed=line, total=str(total))
        if not self.cart:
            self._to(State.ATTRACT if self.role == "self-checkout" else State.SCANNING)
        return self._ok(f"Removed {current.name}: total {money(total, self.config)}")

    def lookup(self, text: str) -> Outcome:
        """Find items without a barcode by name (or SKU)."""
        self._record({"lookup": text})
        if len(text.strip()) < 2:
            return self._no("Type at least two letters")
        items = catalog.search(text)
        self.lookup_results = [(i.sku, i.name, i.price) for i in items]
        if not items:
            return self._no(f"Nothing matches {text!r}. Call staff for help.")
        return self._ok(f"{len(items)} item(s) match {text!r}", results=self.lookup_results)

    def add_item(self, sku: str, qty: object = "1") -> Outcome:
        """Add an item chosen from a lookup (or typed by staff)."""
        self._record({"add": {"sku": sku, "qty": str(qty)}})
        refusal = self._selling_allowed()
        if refusal:
            return self._no(refusal)
        try:
            value = _quantity(qty)
            item = catalog.get_item(sku)
        except (ValueError, LedgerError) as exc:
            return self._no(_sentence(exc))
        if not item.active:
            return self._no(f"{item.name} is no longer sold")
        if value <= 0:
            return self._no("Quantity must be above zero")
        if item.unit == "each" and value != value.to_integral_value():
            return self._no(f"{item.name} is sold by the piece")
        return self._add_line(item, value)

    # ------------------------------------------------------------ help and staff

    def call_staff(self) -> Outcome:
        self._record({"help": True})
        if self.state != State.HELP:
            self.help_from = self.state
            self._to(State.HELP)
        self._alert("Customer asks for help")
        return self._ok("Staff has been called and will be with you shortly")

    def staff_login(self, pin: str | None = None, code: str | None = None) -> Outcome:
        """PIN login (with a badge code, or PIN alone). A session log records who
        logged in, never the PIN; replaying that entry logs in by code."""
        if pin is None and code is None:
            self._record({"staff": {"failed": True}})
            return self._no("Enter a PIN")
        try:
            if pin is None:
                member = self._member_by_code(code)
            else:
                member = staff_service.login(self.ledger, str(pin), code)
        except LedgerError as exc:
            self._record({"staff": {"failed": True}})
            return self._no(_sentence(exc))
        self._record({"staff": {"code": member.code}})
        return self._logged_in(member)

    def _member_by_code(self, code: str | None) -> Staff:
        member = Staff.get_or_none(Staff.code == code)
        if member is None or not member.active:
            raise LedgerError(f"unknown or inactive staff badge {code}")
        audit.record("login_badge", member.code)
        return member

    def _badge(self, code: str) -> Outcome:
        if not self.config.checkout.badge_login:
            return self._no("Badge login is off: enter your PIN")
        try:
            member = self._member_by_code(code)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        return self._logged_in(member)

    def _logged_in(self, member: Staff) -> Outcome:
        self.staff = member
        self._emit("staff", code=member.code, role=member.role)
        if self.pending is not None:
            pending, self.pending = self.pending, None
            if member.role not in pending.roles:
                return self._no(f"{pending.reason} needs a {' or '.join(pending.roles)}")
            audit.record("approval", member.code, pending.action, detail=pending.reason)
            if self.state == State.HELP:
                self._to(self.help_from or State.SCANNING)
            return getattr(self, "_approved_" + pending.action)(*pending.args)
        if self.cart.waiting_for_approval and member.role in SELLING_STAFF:
            return self._approved_approve_age()  # staff came to the kiosk: that is the check
        if self.state == State.HELP:
            self._to(self.help_from or State.ATTRACT)
            self.help_from = None
            return self._ok(f"Hello {member.name}: help given")
        if self.state == State.ATTRACT:
            self._to(State.STAFF_MENU if self.role == "self-checkout" else State.SCANNING)
        return self._ok(f"Hello {member.name} ({member.role})")

    def staff_menu(self) -> Outcome:
        self._record({"menu": True})
        if not self.staff:
            return self._no("Staff login needed")
        if self.state in (State.PAYING, State.RECEIPT) or (self.cart and self.state != State.HELP):
            return self._no("Finish or cancel the sale first")
        self._close_flows()
        self._to(State.STAFF_MENU)
        return self._ok("Staff menu")

    def staff_logout(self) -> Outcome:
        self._record({"logout": True})
        if not self.staff:
            return self._no("Nobody is logged in")
        name = self.staff.name
        self.staff = None
        self._emit("staff", code=None)
        if self.state in STAFF_STATES:
            self._close_flows()
            self._to(State.ATTRACT)
        return self._ok(f"Goodbye {name}")

    def _close_flows(self) -> None:
        self.returning = self.counting = self.receiving = self.kit = None

    def _ask_staff(self, action: str, args: tuple, roles: tuple[str, ...], reason: str):
        if self.staff and self.staff.role in roles:
            return getattr(self, "_approved_" + action)(*args)
        self.pending = Approval(action, args, roles, reason)
        if self.state != State.HELP:
            self.help_from = self.state
            self._to(State.HELP)
        self._alert(f"{reason} needs {' or '.join(roles)} approval")
        return self._no(f"{reason} needs staff: someone is on the way")

    def _approved_remove_line(self, line: int) -> Outcome:
        current = self.cart.remove(line)
        audit.record("line_removed", self._staff_code(), current.sku, "qty", current.qty, 0)
        total = self.cart.priced().total
        self._emit("cart", removed=line, total=str(total))
        if self.state == State.HELP:
            self._to(State.SCANNING)
        return self._ok(f"Removed {current.name}: total {money(total, self.config)}")

    def _approved_set_quantity(self, line: int, value: Decimal) -> Outcome:
        return self._set_qty(line, value)

    def _staff_code(self) -> str | None:
        return self.staff.code if self.staff else None

    def approve(self) -> Outcome:
        """A cashier confirms the age-restricted items in the cart."""
        self._record({"approve": True})
        if not self.staff or self.staff.role not in SELLING_STAFF:
            return self._ask_staff("approve_age", (), SELLING_STAFF, "An age check")
        return self._approved_approve_age()

    def _approved_approve_age(self) -> Outcome:
        waiting = self.cart.waiting_for_approval
        for number, li in enumerate(self.cart.lines, 1):
            if not li.approved:
                self.cart.update(number, approved=True)
        if self.state == State.HELP:
            self._to(self.help_from or State.SCANNING)
            self.help_from = None
        if waiting:
            audit.record("age_check", self._staff_code(), ",".join(li.sku for li in waiting))
            self._emit("cart", approved=[li.sku for li in waiting])
        return self._ok("Age check done" if waiting else "Nothing waits for approval")

    # ------------------------------------------------------------ prices and discounts

    def _within_limit(self, new_total_pct: Decimal) -> bool:
        limit = self.config.checkout.cashier_discount_pct
        return self.staff is not None and (
            self.staff.role == "supervisor"
            or (self.staff.role == "cashier" and new_total_pct <= limit)
        )

    def override_price(self, line: int, price: object) -> Outcome:
        self._record({"override": {"line": line, "price": str(price)}})
        try:
            value = self._typed_money(price, "price")
            current = self.cart.line(line)
        except (ValueError, IndexError) as exc:
            return self._no(_sentence(exc))
        if current.amount is not None:
            return self._no("A priced label's price cannot be overridden")
        pct = (
            (current.list_price - value) / current.list_price * 100 if current.list_price else ZERO
        )
        if not self._within_limit(pct):
            return self._ask_staff("override_price", (line, value), SUPERVISOR, "A price override")
        return self._approved_override_price(line, value)

    def _approved_override_price(self, line: int, value: Decimal) -> Outcome:
        before = self.cart.line(line)
        if self._too_much((value - before.price) * before.qty):
            return self._no(_TOO_MUCH)
        current = self.cart.update(line, price=value)
        total = self.cart.priced().total
        self._emit("cart", line=line, total=str(total))
        return self._ok(f"{current.name} now {money(value, self.config)} each")

    def discount(self, line: int | None = None, percent: object = None, amount: object = None):
        """A line discount (amount or percent), or a percent off every line."""
        self._record({"discount": {"line": line, "percent": percent, "amount": amount}})
        if not self.cart:
            return self._no("Nothing to discount")
        try:
            pct = _decimal(percent, "percent", numbers.MAX_PERCENT) if percent is not None else None
            amt = self._typed_money(amount, "amount") if amount is not None else None
            targets = [line] if line is not None else list(range(1, len(self.cart.lines) + 1))
            for number in targets:
                self.cart.line(number)
        except (ValueError, IndexError) as exc:
            return self._no(str(exc))
        if (pct is None) == (amt is None):
            return self._no("Give a percent or an amount")
        if amt is not None and line is None:
            return self._no("An amount discount applies to one line")
        plans = []
        priced = self.cart.priced().lines
        for number in targets:
            gross = priced[number - 1].gross
            value = amt if amt is not None else (gross * pct / 100)
            value = value.quantize(self.ledger.policy.unit, ROUND_HALF_UP)
            if value < 0 or value > gross:
                return self._no("A discount must be between zero and the line amount")
            share = pct if pct is not None else (value / gross * 100 if gross else ZERO)
            plans.append((number, value, share))
        worst = max(share for _, _, share in plans)
        if not self._within_limit(worst):
            return self._ask_staff("apply_discounts", (tuple(plans),), SUPERVISOR, "A discount")
        return self._approved_apply_discounts(tuple(plans))

    def _approved_apply_discounts(self, plans) -> Outcome:
        for number, value, _ in plans:
            self.cart.update(number, discount=value)
        total = self.cart.priced().total
        audit.record(
            "discount", self._staff_code(), None, None, None, str(sum(v for _, v, _ in plans))
        )
        self._emit("cart", total=str(total))
        return self._ok(f"Discount given: total {money(total, self.config)}")

    # ------------------------------------------------------------ paying

    def pay(self) -> Outcome:
        self._record({"pay": "start"})
        return self._start_paying()

    def _start_paying(self) -> Outcome:
        if self.state == State.PAYING:
            if self._paid_but_not_recorded():
                return self._commit()
            return self._ok(f"Still to pay: {money(self.amount_due, self.config)}")
        if self.state != State.SCANNING or not self.cart:
            return self._no("Scan something first")
        if self.role == "mobile-cart" and not self.config.checkout.cart_tendering:
            return self._no("This cart does not take payment")
        if self.cart.waiting_for_approval:
            if self.staff and self.staff.role in SELLING_STAFF:
                return self._no("Check the customer's age, then approve")
            return self._ask_staff("approve_age", (), SELLING_STAFF, "An age check")
        self.payment = PendingPayment()
        self._slips = []
        self.terminal_status, self.terminal_texts = None, ()
        self._to(State.PAYING)
        return self._ok(f"To pay: {money(self.amount_due, self.config)}")

    def tender_cash(self, amount: object) -> Outcome:
        self._record({"pay": {"cash": str(amount)}})
        return self._tender(CASH, amount, None)

    def tender_card(self, amount: object = None, reference: str | None = None) -> Outcome:
        """A card payment. With a connected terminal (ZVT) the kiosk sends it the amount
        and follows it (`terminal_poll`); with a manual one, staff type the approval
        reference the terminal shows. Only references are recorded, never the card."""
        if reference and payments.looks_like_card_number(reference):
            return self._no(  # never stored, nor logged in the session log
                "That looks like a card number: type the terminal's approval reference"
            )
        entry: dict[str, Any] = {"card": str(amount) if amount is not None else None}
        if reference:
            entry["ref"] = reference
        elif self.terminal.kind != "manual":  # replayed with kiosk replay --terminal sim
            entry = {"terminal": entry["card"]}
        self._record({"pay": entry})
        if self.terminal.kind == "manual":
            return self._tender("card", amount, reference)
        if reference:  # the terminal's link is down and staff took the card by hand
            if not (self.staff and self.staff.role in SELLING_STAFF):
                return self._no("Pay on the card terminal: insert or tap your card there")
            return self._tender("card", amount, reference)
        return self._pay_at_terminal(amount)

    # ------------------------------------------------------------ the card terminal

    def _terminal_name(self) -> str:
        where = getattr(getattr(self.terminal, "link", None), "where", "")
        return f"{self.terminal.kind} {where}".strip()

    def _start_job(self, purpose: str, call, *args, context=None) -> None:
        self.terminal_job = TerminalJob(
            purpose, call, *args, notify=self._poke_app, context=context
        ).start()

    def _poke_app(self) -> None:
        if self.terminal_notify is not None:
            self.terminal_notify()

    def _pay_at_terminal(self, amount: object) -> Outcome:
        if self.terminal_job is not None:
            return self._no("The card terminal is busy: follow it, or cancel the payment")
        if self.state == State.PAYING and self._paid_but_not_recorded():
            return self._commit()
        if self.state != State.PAYING:
            started = self._start_paying()
            if not started.ok:
                return started
        if self.card_blocked:
            self._alert(f"Card payments wait: {self.card_blocked}")
            return self._no("Card payment is not possible right now: pay another way or call staff")
        due = self.amount_due
        try:
            value = self._typed_money(amount, "amount") if amount is not None else due
        except ValueError as exc:
            return self._no(_sentence(exc))
        paid = sum((t.amount for t in self.payment.tenders if t.kind != CASH), ZERO)
        if value <= 0:
            return self._no("Amount must be above zero")
        if paid + value > self._payable_total():
            return self._no(f"A card cannot pay more than the {money(due, self.config)} due")
        try:  # written before the terminal hears of it: a power cut cannot lose it
            pid = payments.record_request(self.ledger, "authorize", value, self._terminal_name())
        except StorageFullError as exc:
            self._storage_failed(exc)
            return self._no("Card payment is not possible: this kiosk's storage is full")
        except LedgerError as exc:
            return self._no(f"Card payment is not possible: {exc}")
        self.terminal_status, self.terminal_texts = "follow", ()
        self._start_job("authorize", self.terminal.authorize, value, context=(pid, value))
        self._emit("payment", kind="card", status="started", amount=str(value))
        return self._ok(f"Pay {money(value, self.config)} on the card terminal", amount=value)

    def terminal_poll(self) -> Outcome:
        """Take what the terminal reported (status for the screen, its result). The app
        calls this when the terminal's thread pokes it; `tick` calls it too."""
        job = self.terminal_job
        if job is None:
            return Outcome(True, self.message)
        finished = job.done.is_set()  # before draining: no update is missed
        for update in job.drain():
            if update.kind == "status":
                self.terminal_status, self.terminal_texts = update.status, update.texts
                self.last_activity = self.clock()
                self._emit("payment", kind="card", status=update.status)
        if not finished:
            return Outcome(True, self.message)
        self.terminal_job = None
        return getattr(self, "_after_" + job.purpose)(job.result, job.context)

    def terminal_wait(self, timeout: float = 300.0) -> Outcome:
        """Headless use (replay, tests): block until the terminal's call ends, then poll."""
        outcome = Outcome(True, self.message)
        while self.terminal_job is not None:
            if not self.terminal_job.wait(timeout):
                return self._no("The card terminal did not finish in time")
            outcome = self.terminal_poll()
        return outcome

    def _journal(self, write, *args) -> bool:
        """A journal write after the terminal answered; a full disk must not lose the
        payment: the row stays open and the restart settles it with the terminal."""
        try:
            write(*args)
        except LedgerError as exc:
            self._alert(f"Card payment journal not written ({exc}); it is settled later")
            return False
        return True

    def _after_authorize(self, result: TerminalResult, context) -> Outcome:
        pid, value = context
        self._journal(payments.record_outcome, self.ledger, pid, result)
        self.terminal_status, self.terminal_texts = result.outcome, ()
        if result.approved and result.amount != value:
            return self._wrong_amount(pid, value, result)
        if result.approved:
            return self._card_approved(result, value)
        if result.outcome == "unknown":
            return self._ask_what_happened("payment", value, result, "settle", (pid, value))
        if result.outcome == "failed":
            self._alert(f"Card terminal: {result.message}")
            return self._no("The card terminal is not available. Pay another way or call staff")
        if result.outcome == "aborted":
            return self._no("Card payment cancelled. Try again or pay another way")
        return self._no(f"Card declined ({result.message}). Try again or pay another way")

    def _ask_what_happened(self, what, amount, result, job, context) -> Outcome:
        """A lost answer is never "declined": tell staff and ask the terminal for its
        last transaction (the `job` handler decides)."""
        self._alert(
            f"Card {what} of {money(amount, self.config)}: the terminal's answer was lost "
            f"({result.message}); asking the terminal"
        )
        self.terminal_status = "processing"
        self._start_job(job, self.terminal.last_transaction, context=context)
        return self._no(f"Checking the {what} with the card terminal, please wait")

    def _wrong_amount(self, pid: int, value: Decimal, result: TerminalResult) -> Outcome:
        """The terminal approved another amount than asked: it does not pay the cart.
        It is reversed at once by its receipt number; staff are told."""
        took = "no amount" if result.amount is None else money(result.amount, self.config)
        self._alert(
            f"Card payment {pid}: the terminal approved {took} instead of "
            f"{money(value, self.config)} (terminal receipt {result.receipt_no}): reversing it"
        )
        try:
            row = payments.record_request(
                self.ledger, "reversal", value, self._terminal_name(), pid
            )
        except LedgerError as exc:  # stays approved: the restart's recovery reverses it
            self._alert(f"Card payment journal not written ({exc}); it is settled later")
            return self._no("The card payment did not go through. Please call staff")
        context = [(pid, row, result.reference, value)]
        self.terminal_status = "processing"
        self._start_job("mismatch", self._reverse_call, [result.receipt_no], context=context)
        return self._no("The card terminal took a different amount: it is cancelled. Please wait")

    def _after_mismatch(self, results, context) -> Outcome:
        done = self._after_reverse(results, context)
        if done.ok:
            return self._no(
                "The card payment did not go through (the terminal took a different amount; "
                "it was cancelled). Try again or pay another way"
            )
        return self._no("The card payment did not go through. Staff will refund the card")

    def _card_approved(self, result: TerminalResult, value: Decimal) -> Outcome:
        if result.customer_receipt:
            self._slips.append(result.customer_receipt)
        if result.merchant_receipt and self.config.payment.print_merchant_receipt:
            self._print_slip("Card payment (merchant copy)", result.merchant_receipt)
        return self._tender("card", value, result.reference)

    def _print_slip(self, title: str, lines: tuple[str, ...]) -> None:
        try:
            self.printer.print_report(TextReport(title, tuple(lines)))
        except PrinterError as exc:
            self._alert(f"Printer: {exc}. The card terminal's receipt was not printed")

    def _judge(self, amount: Decimal, last: TerminalResult) -> str:
        """Did a payment whose answer was lost go through? The terminal's last transaction
        says so when it is one the journal does not know, for the same amount."""
        if last.outcome in ("failed", "unknown"):
            return "unreachable"
        known = payments.known_receipts(last.terminal_id)
        return "charged" if _is_ours(last, amount, known) else "not_charged"

    def _after_settle(self, last: TerminalResult, context) -> Outcome:
        pid, value = context
        verdict = self._judge(value, last)
        if verdict == "charged":  # the customer is still here: the sale goes ahead
            self._journal(payments.record_outcome, self.ledger, pid, last)
            self.terminal_status = "approved"
            return self._card_approved(last, value)
        if verdict == "not_charged":
            self._journal(payments.settle, self.ledger, pid, "not_charged", "terminal: not taken")
            self.terminal_status = "aborted"
            return self._no("The card payment did not go through. Try again or pay another way")
        return self._terminal_silent(
            "card payment", pid, value, "The card terminal does not answer. Please call staff"
        )

    def _terminal_silent(self, what: str, row: int, amount: Decimal, then: str) -> Outcome:
        """The terminal did not answer about a payment or refund: card payments pause
        until it is settled (asked again every SETTLE_EVERY_S) and staff are told."""
        shown = money(amount, self.config)
        self.card_blocked = f"{what} {row} of {shown} not settled"
        self._alert(
            f"{what.capitalize()} of {shown} is not settled: the terminal does not answer. "
            "Check its last receipt; the kiosk keeps asking"
        )
        self._settle_at = self.clock()
        self.terminal_status = "failed"
        return self._no(then)

    def recover_payments(self) -> Outcome:
        """After a restart (and then every SETTLE_EVERY_S while one is open): settle
        card payments the journal left open. An approved payment without its sale is
        reversed; a lost answer is asked for; staff are told what happened."""
        self._record({"recover": "payments"})
        self._settle_at = self.clock()
        if self.terminal_job is not None or self.terminal.kind == "manual":
            return Outcome(True, self.message)
        rows = payments.open_payments()
        if not rows:
            self.card_blocked = None
            if self.terminal_status is None:  # at start: register, so faults show early
                self._start_job("check", lambda _listener: self.terminal.register())
            return Outcome(True, self.message)
        work = []
        for row in rows:
            if self.state == State.PAYING and row.reference in {
                t.reference for t in self.payment.tenders
            }:
                continue  # in the cart being paid: its sale commits it
            if self.refunding and row.id in {p.row for p in self.refunding.parts}:
                continue  # the refund waiting here: posted with its return
            refund = row.kind != "authorize" and payments.is_refund(row.id)
            work.append((row.id, row.state, row.amount, row.receipt_no, refund))
        if not work:
            return Outcome(True, self.message)
        known = payments.known_receipts(None)
        self._start_job("recover", self._recover_call, work, known, context=work)
        return self._ok("Settling interrupted card payments with the terminal")

    def _last_was_ours(self, pid, amount, known, listener, newest_unknown):
        """A payment or refund whose answer was lost: is the terminal's last transaction
        it (approved, a receipt number not seen before, the same amount)? Returns
        ("ours" | "not_ours" | "unreachable", the terminal's answer or None). Only the
        newest lost one can be the terminal's last: older ones stay unreachable."""
        if pid != newest_unknown:
            return "unreachable", None
        last = self.terminal.last_transaction(listener)
        if last.outcome in ("failed", "unknown"):
            return "unreachable", last
        return ("ours" if _is_ours(last, amount, known) else "not_ours"), last

    def _recover_call(self, work, known, listener) -> list:
        """On the job's thread: terminal calls only, no ledger."""
        decisions = []
        newest_unknown = max((w[0] for w in work if w[1] != "approved"), default=None)
        for pid, state, amount, receipt_no, refund in work:
            last = None
            if refund:  # money back to a card: an approved one is posted, never reversed
                if state == "approved":
                    decisions.append((pid, "refunded", None, None))
                    continue
                verdict, last = self._last_was_ours(pid, amount, known, listener, newest_unknown)
                if verdict != "unreachable":
                    verdict = "refunded" if verdict == "ours" else "not_charged"
                decisions.append((pid, verdict, last, None))
                continue
            if state != "approved":
                verdict, last = self._last_was_ours(pid, amount, known, listener, newest_unknown)
                if verdict != "ours":
                    unreachable = verdict == "unreachable"
                    decisions.append(
                        (pid, "unreachable" if unreachable else "not_charged", last, None)
                    )
                    continue
                receipt_no = last.receipt_no
            if not receipt_no:  # never "reverse the last transaction": it may be another
                no = TerminalResult("declined", "no terminal receipt number: not reversed blindly")
                decisions.append((pid, "refund_needed", last, no))
                continue
            reversal = self.terminal.reverse(receipt_no, listener)
            if reversal.approved or reversal.code == 0xB4:  # reversed (now or before)
                decisions.append((pid, "reversed", last, reversal))
            elif reversal.outcome in ("failed", "unknown"):
                decisions.append((pid, "unreachable", last, reversal))
            else:
                decisions.append((pid, "refund_needed", last, reversal))
        return decisions

    def _after_recover(self, decisions, work) -> Outcome:
        if not isinstance(decisions, list):  # the driver failed: the terminal is not usable
            why = getattr(decisions, "message", "terminal error")
            self.card_blocked = f"{len(work)} card payment(s) not settled"
            self._alert(
                f"{len(work)} card payment(s) are not settled ({why}). Check the terminal's "
                "last receipts; the kiosk keeps asking"
            )
            return self._no("Card payments are paused until the terminal answers")
        amounts = {pid: amount for pid, _, amount, _, _ in work}
        refunds = {pid for pid, *_, refund in work if refund}
        open_left = []
        groups: dict[str, int] = {}  # refunds: first the outcomes, then one posting a group
        for pid, verdict, last, _reversal in decisions:
            if pid in refunds and verdict != "unreachable":
                group = self._recover_refund_outcome(
                    pid, verdict, last, money(amounts[pid], self.config)
                )
                if group is not None:
                    groups.setdefault(group, pid)
        for pid in groups.values():
            self._recover_refund(pid, money(amounts[pid], self.config))
        for pid, verdict, last, reversal in decisions:
            amount = money(amounts[pid], self.config)
            if pid in refunds and verdict != "unreachable":
                continue
            if last is not None and last.approved and verdict != "not_charged":
                self._journal(payments.record_outcome, self.ledger, pid, last)
            receipt = getattr(last, "receipt_no", None) or payments.get(pid).receipt_no
            if reversal is not None and reversal.outcome != "failed":
                self._journal(self._journal_reversal, pid, reversal)
            if verdict == "reversed":
                self._journal(payments.settle, self.ledger, pid, "reversed", "after restart")
                self._alert(
                    f"Card payment of {amount} (terminal receipt {receipt}) was approved but "
                    "its sale was not recorded (restart): it was reversed, nothing charged"
                )
            elif verdict == "refund_needed":
                why = reversal.message if reversal else "reversal refused"
                self._journal(payments.settle, self.ledger, pid, "refund_needed", why)
                self._alert(
                    f"Card payment of {amount} (terminal receipt {receipt}) was taken but its "
                    f"sale was not recorded, and the terminal refused to reverse it ({why}): "
                    "refund it to the customer"
                )
            elif verdict == "not_charged":
                self._journal(payments.settle, self.ledger, pid, "not_charged", "not taken")
                self._alert(f"Card payment of {amount} interrupted by a restart: nothing was taken")
            else:
                open_left.append(pid)
        if open_left:
            self.card_blocked = f"{len(open_left)} card payment(s) not settled"
            self._alert(
                f"{len(open_left)} card payment(s) are not settled: the terminal does not "
                "answer. Check its last receipts; the kiosk keeps asking"
            )
            return self._no("Card payments are paused until the terminal answers")
        self.card_blocked = None
        return self._ok("Card payments settled")

    def _recover_refund_outcome(self, pid: int, verdict: str, last, amount: str) -> str | None:
        """A card refund a restart interrupted: record what the terminal said; the
        group (the refund's posting) whose money went back, to be posted once."""
        request = payments.request_of(pid) or {}
        what = f"{request.get('kind', 'return')} of receipt {request.get('receipt') or '-'}"
        if verdict == "not_charged":
            self._journal(payments.settle, self.ledger, pid, "not_charged", "not refunded")
            self._alert(
                f"Card refund of {amount} for the {what} was interrupted by a restart: "
                "nothing was refunded and nothing posted; do the return again"
            )
            return None
        if last is not None and last.approved:
            self._journal(payments.record_outcome, self.ledger, pid, last)
        return str(request.get("group") or f"row {pid}")

    def _recover_refund(self, pid: int, amount: str) -> None:
        """Post the return (exchange, void) of a card refund group the terminal gave
        back before a restart; if part of it is missing, the given parts wait to be
        reused when staff do the return again (one alert, one instruction)."""
        if payments.get(pid).state == "committed":
            return  # posted already (by this pass or before)
        request = payments.request_of(pid) or {}
        what = f"{request.get('kind', 'return')} of receipt {request.get('receipt') or '-'}"
        group = [
            row
            for row in payments.unsettled()
            if row.state in ("approved", "unposted")
            and (payments.request_of(row.id) or {}).get("group") == request.get("group")
        ]
        if len(group) != len(request.get("parts", [])):
            given = sum((row.amount for row in group), ZERO)
            for row in group:
                self._journal(payments.settle, self.ledger, row.id, "unposted", "part given")
            self._alert(
                f"Card refund for the {what}: {money(given, self.config)} was given before a "
                "restart, the rest was not, and nothing is posted: do the return again (what "
                "was given is reused, not sent again)"
            )
            return
        why = "it could not be posted"
        if group:
            try:
                with self.ledger.transaction():
                    posted = post_request(
                        self.ledger, request, [(r.amount, r.reference) for r in group]
                    )
                    payments.mark_refunds_committed([r.id for r in group], posted.number)
            except LedgerError as exc:
                why = str(exc)
            else:
                self._alert(
                    f"Card refund of {amount} for the {what} was given before a restart: "
                    f"{posted.kind} {posted.number} is now posted"
                )
                return
        self._journal(payments.settle, self.ledger, pid, "unposted", f"not posted: {why}")
        self._alert(
            f"Card refund of {amount} for the {what} was given, but it could not be posted "
            f"({why}): post it by hand, then resolve payment {pid}"
        )

    def _after_check(self, result: TerminalResult, _context) -> Outcome:
        if not result.approved:
            self._alert(f"Card terminal: {result.message}")
        return Outcome(True, self.message)

    def _journal_reversal(self, pid: int, reversal: TerminalResult) -> None:
        row = payments.record_request(
            self.ledger, "reversal", payments.get(pid).amount, self._terminal_name(), pid
        )
        payments.record_outcome(self.ledger, row, reversal)

    def _after_reverse(self, results, context) -> Outcome:
        if not isinstance(results, list):  # the driver failed: nothing is known
            results = [results] * len(context)
        failed = []
        for (pid, row, ref, _amount), result in zip(context, results, strict=True):
            self._journal(payments.record_outcome, self.ledger, row, result)
            if result.approved or result.code == 0xB4:
                self._journal(payments.settle, self.ledger, pid, "reversed", "payment cancelled")
            else:
                failed.append(ref)
                state = "refund_needed" if result.outcome == "declined" else "approved"
                self._journal(payments.settle, self.ledger, pid, state, result.message)
        if failed:
            self._alert(f"Payment cancelled: reverse card payment(s) {', '.join(failed)} by hand")
            return self._no("Payment cancelled; staff will refund the card payment")
        return self._ok("Payment cancelled: the card payment was reversed")

    def _reverse_call(self, receipts_no, listener) -> list:
        return [
            self.terminal.reverse(number, listener)
            if number
            else TerminalResult("declined", "no terminal receipt number: not reversed blindly")
            for number in receipts_no
        ]

    def _due_text(self) -> str:
        """What the pay screen shows: nothing more to pay once the tenders cover it."""
        return "0" if self._paid_but_not_recorded() else str(self.amount_due)

    def _paid_but_not_recorded(self) -> bool:
        """Tenders that cover the total while still paying: the commit failed (a full
        disk). Pressing pay or any tender again retries it; the money is not taken twice."""
        if not self.payment.tenders:
            return False
        try:
            settle(self._payable_total(), self.payment.tenders, self.ledger.policy)
        except MoneyError:
            return False
        return True

    def _tender(self, kind: str, amount: object, reference: str | None) -> Outcome:
        if self.state == State.PAYING and self._paid_but_not_recorded():
            return self._commit()
        if self.state != State.PAYING:
            started = self._start_paying()
            if not started.ok:
                return started
        due = self.amount_due
        try:
            value = self._typed_money(amount, "amount") if amount is not None else due
        except ValueError as exc:
            return self._no(_sentence(exc))
        if kind == "card" and not reference:
            return self._no("Enter the terminal's approval reference")
        if reference is not None and (
            len(reference) > MAX_REFERENCE or not reference.isprintable()
        ):
            return self._no(f"An approval reference is at most {MAX_REFERENCE} plain characters")
        if value <= 0:
            return self._no("Amount must be above zero")
        tenders = [*self.payment.tenders, Tender(kind, value, reference)]
        non_cash = sum((t.amount for t in tenders if t.kind != CASH), ZERO)
        if non_cash > self._payable_total():
            return self._no(f"A card cannot pay more than the {money(due, self.config)} due")
        self.payment.tenders = tenders
        self._emit("payment", kind=kind, amount=str(value))
        total = self._payable_total()
        try:
            settle(total, tenders, self.ledger.policy)
        except MoneyError:
            left = self.amount_due
            if kind == CASH or any(t.kind == CASH for t in tenders):
                left = round_cash(left, self.ledger.policy.cash_step, self.ledger.policy.unit)
            return self._ok(f"Still to pay: {money(left, self.config)}", due=left)
        return self._commit()

    def cancel_payment(self) -> Outcome:
        self._record({"pay": "cancel"})
        if self.state != State.PAYING:
            return self._no("No payment in progress")
        if self.terminal_job is not None:  # the terminal decides: declined, aborted or paid
            self.terminal.abort()
            return self._ok("Cancelling the card payment at the terminal")
        reversible = self._terminal_tenders()
        if reversible:
            rows = []
            for tender, pid in reversible:
                row = payments.record_request(
                    self.ledger, "reversal", tender.amount, self._terminal_name(), pid
                )
                rows.append((pid, row, tender.reference, tender.amount))
            numbers_ = [_receipt_of(ref) for _, _, ref, _ in rows]
            self._start_job("reverse", self._reverse_call, numbers_, context=rows)
            self.payment.tenders = [t for t in self.payment.tenders if t.kind == CASH]
            self.terminal_status = "processing"
        cards = [t for t in self.payment.tenders if t.kind != CASH]
        cash = sum((t.amount for t in self.payment.tenders if t.kind == CASH), ZERO)
        back = State.RETURNING if self.payment.kind == "exchange" else State.SCANNING
        self.payment = PendingPayment()
        self._to(back)
        notes = []
        if cards:
            refs = ", ".join(t.reference or "?" for t in cards)
            notes.append(f"reverse card payment(s) {refs} on the terminal")
            self._alert(f"Payment cancelled: reverse card payment(s) {refs}")
        if cash:
            notes.append(f"give back {money(cash, self.config)} cash")
        return self._ok("Payment cancelled" + (": " + "; ".join(notes) if notes else ""))

    def _terminal_tenders(self) -> list[tuple[Tender, int]]:
        """Card tenders of this payment that the terminal approved (journal rows open)."""
        refs = {t.reference: t for t in self.payment.tenders if t.kind == "card" and t.reference}
        if not refs or self.terminal.kind == "manual":
            return []
        rows = [r for r in payments.open_payments() if r.reference in refs]
        return [(refs[r.reference], r.id) for r in rows if r.state == "approved"]

    def _commit(self) -> Outcome:
        tenders = list(self.payment.tenders)
        try:
            with self.ledger.transaction():  # the sale and its card payments, together
                posted = self._post(tenders)
                payments.mark_committed(
                    [t.reference for t in tenders if t.kind == "card" and t.reference],
                    posted.number,
                )
        except StorageFullError as exc:
            self._storage_failed(exc)
            return self._no("Could not record the sale: this kiosk's storage is full. Call staff.")
        except LedgerError as exc:
            return self._no(f"Could not complete the sale: {exc}. Call staff.")
        return self._committed(posted, tenders)

    def _post(self, tenders) -> Posted:
        if self.payment.kind == "exchange":
            flow = self.payment.exchange
            return sales.post_exchange(
                self.ledger,
                flow.receipt,
                flow.lines,
                [li.to_sale_line() for li in flow.sold],
                tenders,
                self._staff_code(),
                flow.reason,
            )
        return sales.post_sale(
            self.ledger,
            [li.to_sale_line() for li in self.cart.lines],
            tenders,
            staff=self._staff_code(),
        )

    def _committed(self, posted: Posted, tenders) -> Outcome:
        self.storage_full = None  # it was written: there is space
        self.last_posted = posted
        self._emit("posted", receipt=posted.number, total=str(posted.total))
        if any(t.kind == CASH for t in tenders):
            self._open_drawer()
        self.cart.clear()
        self.returning = None
        self.payment = PendingPayment()
        self._to(State.RECEIPT)
        change = f" Change: {money(posted.change, self.config)}." if posted.change else ""
        return self._ok(f"Paid, thank you!{change} Receipt {posted.number}", receipt=posted.number)

    def _open_drawer(self) -> None:
        try:
            self.drawer.open()
            self._emit("drawer", opened=True)
        except DrawerError as exc:
            self._alert(f"Cash drawer did not open: {exc}")

    def choose_receipt(self, printed: bool) -> Outcome:
        self._record({"receipt": "print" if printed else "none"})
        if self.state != State.RECEIPT or self.last_posted is None:
            return self._no("No receipt to give")
        number = self.last_posted.number
        outcome = self._print_receipt(number) if printed else self._ok("No receipt")
        slips, self._slips = self._slips, []
        if printed and outcome.ok:  # the terminal's receipt comes out with ours
            for slip in slips:
                self._print_slip("Card payment", slip)
        self._finish_customer()
        return outcome

    def _finish_customer(self) -> None:
        if self.role == "self-checkout" and self.staff:
            self.staff = None
            self._emit("staff", code=None)
        self._to(State.ATTRACT if self.role == "self-checkout" else State.SCANNING)

    def _print_receipt(self, number: str, reprint: bool = False) -> Outcome:
        job = receipts.enqueue(self.ledger, "receipt", number)
        try:
            self.printer.print_receipt(receipts.receipt_for(self.ledger, number, reprint))
        except PrinterError as exc:
            receipts.mark_failed(job, str(exc))
            self._alert(f"Printer: {exc}. Receipt {number} is queued for reprint")
            return self._no(
                f"The receipt could not be printed ({exc}). Staff has been told; "
                "your purchase is complete."
            )
        receipts.mark_printed(job)
        self._emit("printed", receipt=number)
        return self._ok(f"Receipt {number} printed")

    def cancel(self) -> Outcome:
        """Abandon the cart: recorded for audit, never posted."""
        self._record({"cancel": True})
        if self.terminal_job is not None:
            return self._no("The card terminal is still working: cancel the payment first")
        if self.state == State.PAYING and self.payment.tenders:
            return self._no("Cancel the payment first")
        if not self.cart and self.state not in (State.HELP,):
            return self._no("Nothing to cancel")
        self._abandon("cancelled")
        return self._ok("Sale cancelled")

    def _abandon(self, why: str) -> None:
        if self.cart:
            lines = [{"sku": li.sku, "qty": str(li.qty)} for li in self.cart.lines]
            audit.record(
                "abandoned_cart",
                self._staff_code(),
                None,
                None,
                None,
                str(self.cart.priced().total),
                json.dumps({"why": why, "lines": lines}),
            )
        self.cart.clear()
        self.payment = PendingPayment()
        self.pending = None
        self.next_qty = None
        self._emit("cart", total="0")
        self._finish_customer() if self.role == "self-checkout" else self._to(State.SCANNING)

    # ------------------------------------------------------------ time

    def tick(self) -> Outcome | None:
        """Called by the UI every second or so: idle timeouts."""
        if self.terminal_job is not None:  # the customer is at the terminal: no idle timeout
            outcome = self.terminal_poll()
            return outcome if self.terminal_job is None else None
        since = (self.clock() - self._settle_at).total_seconds() if self._settle_at else 0
        if self.card_blocked and since >= SETTLE_EVERY_S:
            self.recover_payments()
        idle = (self.clock() - self.last_activity).total_seconds()
        cfg = self.config.checkout
        if self.storage_full is not None:
            self._probe_storage()
        if self.state == State.RECEIPT and idle >= cfg.receipt_timeout_s:
            self._finish_customer()
            self.last_activity = self.clock()
            return self._ok(self._welcome())
        if idle < cfg.idle_timeout_s:
            return None
        self.last_activity = self.clock()
        if self.state == State.PAYING and self.payment.tenders:
            self._alert("Customer left during payment: staff needed")
            return None
        if self.storage_full is not None and self.cart:
            return None  # the sale that could not be recorded waits for staff
        if self.state in (State.SCANNING, State.PAYING, State.HELP) and self.cart:
            self._abandon("idle timeout")
            return self._ok(self._welcome())
        if self.state in STAFF_STATES or self.staff:
            self.staff = None
            self._close_flows()
            self._emit("staff", code=None)
            self._to(State.ATTRACT)
            return self._ok(self._welcome())
        return None

    # ------------------------------------------------------------ staff flows

    def _need(self, roles: tuple[str, ...]) -> str | None:
        if not self.staff:
            return "Staff login needed"
        if self.staff.role not in roles:
            return f"Needs a {' or '.join(roles)}"
        return None

    def _staff_state(self) -> str | None:
        if self.state in (State.PAYING, State.RECEIPT) or self.cart:
            return "Finish or cancel the sale first"
        return None

    def start_return(self, receipt: str | None = None) -> Outcome:
        self._record({"start": "return", "receipt": receipt})
        refusal = self._need(SELLING_STAFF) or self._staff_state()
        if refusal:
            return self._no(refusal)
        self._close_flows()
        self.returning = ReturnFlow()
        self._to(State.RETURNING)
        if receipt:
            return self._receipt_scan(receipt)
        return self._ok("Scan the receipt barcode, or the items for a return without receipt")

    def _receipt_scan(self, number: str) -> Outcome:
        if self.state != State.RETURNING:
            if self.state in CUSTOMER_STATES and not self.staff:
                return self._no("Returns are done by staff: please call staff")
            started = self.start_return()
            if not started.ok:
                return started
        try:
            original = sales.find_receipt(number)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        self.returning.receipt = original.number
        return self._ok(f"Receipt {original.number}: scan the items coming back")

    def _return_scan(self, parsed: Parsed) -> Outcome:
        try:
            scanned = catalog.resolve_scan(parsed)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        return self.return_item(scanned.item.sku, scanned.qty)

    def return_item(self, sku: str, qty: object = "1", condition: str = "resaleable") -> Outcome:
        self._record({"return_item": {"sku": sku, "qty": str(qty), "condition": condition}})
        if self.state != State.RETURNING or self.returning is None:
            return self._no("Start a return first")
        try:
            value = _quantity(qty)
        except ValueError as exc:
            return self._no(_sentence(exc))
        if condition not in sales.CONDITIONS:
            return self._no(f"Condition must be one of {', '.join(sales.CONDITIONS)}")
        flow = self.returning
        lines = [*flow.lines, sales.ReturnLine(sku, value, condition)]
        try:
            sales.preview_return(self.ledger, flow.receipt, _merge_returns(lines))
        except LedgerError as exc:
            return self._no(_sentence(exc))
        flow.lines = lines
        return self._ok(f"Return {value} x {sku} ({condition})")

    def exchange_item(self, code: str) -> Outcome:
        """During a return: scan what the customer takes instead (an exchange)."""
        self._record({"exchange_scan": code})
        if self.state != State.RETURNING or self.returning is None:
            return self._no("Start a return first")
        try:
            scanned = catalog.resolve_scan(self.ledger.parser.parse(code))
        except (BarcodeError, LedgerError) as exc:
            return self._no(_sentence(exc))
        item = scanned.item
        self.returning.sold.append(
            CartLine.from_item(item, scanned.qty, scanned.barcode, scanned.amount, scanned.lot)
        )
        return self._ok(f"Exchange: {item.name} goes out instead")

    def _exchange_preview(self, flow: ReturnFlow) -> Decimal:
        back = sales.preview_return(self.ledger, flow.receipt, _merge_returns(flow.lines))
        sold = Cart(self.ledger.policy)
        for li in flow.sold:
            sold.add(li)
        return sum((row.total for row in back), ZERO) + sold.priced().total

    def finish_return(self, reason: str = "unwanted") -> Outcome:
        self._record({"finish": "return", "reason": reason})
        flow = self.returning
        if self.state != State.RETURNING or flow is None or not flow.lines:
            return self._no("Scan the items coming back first")
        if reason not in sales.RETURN_REASONS:
            return self._no(f"Reason must be one of {', '.join(sales.RETURN_REASONS)}")
        flow.reason = reason
        if flow.sold:
            difference = self._exchange_preview(flow)
            self.payment = PendingPayment(kind="exchange", exchange=flow)
            if difference > 0:
                self._to(State.PAYING)
                return self._ok(f"Exchange: customer pays {money(difference, self.config)}")
            if difference < 0:  # card and voucher first, the rest in cash (README, Ledger)
                try:
                    tenders = sales.refund_tenders(self.ledger, flow.receipt, -difference)
                except LedgerError as exc:
                    return self._no(_sentence(exc))
                started = self._refund_at_terminal(
                    "exchange", flow.receipt, -difference, tenders, self._refund_request(flow)
                )
                if started is not None:
                    return started
                self.payment.tenders = tenders
            return self._commit_staff_refund()
        if self.terminal.kind != "manual" and flow.receipt:
            try:
                rows = sales.preview_return(self.ledger, flow.receipt, _merge_returns(flow.lines))
                amount = -sum((row.total for row in rows), ZERO)
                tenders = sales.refund_tenders(self.ledger, flow.receipt, amount)
            except LedgerError as exc:
                return self._no(_sentence(exc))
            started = self._refund_at_terminal(
                "return", flow.receipt, amount, tenders, self._refund_request(flow)
            )
            if started is not None:
                return started
        try:
            posted = sales.post_return(
                self.ledger,
                _merge_returns(flow.lines),
                reason,
                self._staff_code(),
                receipt=flow.receipt,
            )
        except LedgerError as exc:
            return self._no(_sentence(exc))
        return self._after_refund(posted)

    def _commit_staff_refund(self) -> Outcome:
        outcome = self._commit()
        if outcome.ok:
            self._print_receipt(self.last_posted.number)
            self._to(State.STAFF_MENU)
        return outcome

    def _after_refund(self, posted: Posted) -> Outcome:
        self.last_posted = posted
        self._emit("posted", receipt=posted.number, total=str(posted.total))
        if CASH in sales.tender_kinds(posted.id):
            self._open_drawer()
        self._print_receipt(posted.number)
        self.returning = None
        self._to(State.STAFF_MENU)
        return self._ok(
            f"{posted.kind.capitalize()} {posted.number}: refund {money(-posted.due, self.config)}",
            receipt=posted.number,
        )

    def void(self, receipt: str, reason: str = "post_void") -> Outcome:
        self._record({"void": {"receipt": receipt, "reason": reason}})
        refusal = self._need(SUPERVISOR) or self._staff_state()
        if refusal:
            return self._no(refusal)
        if self.terminal.kind != "manual":
            try:
                tenders = sales.void_tenders(receipt)
                number = sales.find_receipt(receipt, kinds=("sale",)).number
            except LedgerError as exc:
                return self._no(_sentence(exc))
            amount = -sum((t.amount for t in tenders), ZERO)
            request = {"kind": "void", "receipt": number, "reason": reason}
            started = self._refund_at_terminal("void", number, amount, tenders, request)
            if started is not None:
                return started
        try:
            posted = sales.post_void(self.ledger, receipt, self._staff_code(), reason)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        return self._after_refund(posted)

    # ------------------------------------------------------------ card refunds

    def _refund_request(self, flow: ReturnFlow) -> dict[str, Any]:
        """What a return or exchange posts, as JSON for the payment journal."""
        return {
            "kind": "exchange" if flow.sold else "return",
            "receipt": flow.receipt,
            "reason": flow.reason,
            "lines": [
                {"sku": li.sku, "qty": str(li.qty), "condition": li.condition}
                for li in _merge_returns(flow.lines)
            ],
            "sold": [_sale_line_json(li.to_sale_line()) for li in flow.sold],
        }

    def _terminal_parts(
        self, receipt: str | None, tenders: list[Tender]
    ) -> tuple[list[Tender], list[CardRefund]]:
        """Split the card part of a refund over the original's terminal payments; what
        they cannot take stays a card tender that staff refund by hand, as before."""
        originals = payments.terminal_payments(receipt) if receipt else []
        if not originals or self.terminal.kind == "manual":
            return tenders, []
        others: list[Tender] = []
        parts: list[CardRefund] = []
        used: set[int] = set()
        today = self.clock().astimezone().date()
        for tender in tenders:
            if tender.kind != "card" or tender.amount >= 0:
                others.append(tender)
                continue
            left = -tender.amount
            for paid in originals:
                refunds = payments.refunds_of(paid.id)
                if any(r.state in ("requested", "unknown") for r in refunds):
                    raise _RefundBlocked(
                        f"A card refund for receipt {receipt} is not settled yet: ask the "
                        "terminal again or resolve it (staff menu, card payments)"
                    )
                for r in refunds:  # given at the terminal, never posted: reused
                    if payments.reusable_refund(r) and r.id not in used and r.amount <= left:
                        used.add(r.id)
                        part = CardRefund(paid.id, r.amount, paid.receipt_no, False, r.id)
                        part.reference = r.reference
                        parts.append(part)
                        left -= r.amount
                # Everything that went back to the card bounds what still can: resolved
                # rows too (money given, settled by hand), never a second time.
                given = [r for r in refunds if r.state in payments.REFUND_GIVEN]
                done = sum((r.amount for r in given), ZERO)
                take = min(left, paid.amount - done)
                if take <= 0:
                    continue
                reverse = (
                    take == paid.amount
                    and not given
                    and paid.receipt_no is not None
                    and paid.created_at.astimezone().date() == today
                    and not payments.end_of_day_since(paid.created_at)
                )
                parts.append(CardRefund(paid.id, take, paid.receipt_no, reverse))
                left -= take
            if left > 0:
                others.append(Tender("card", -left, None))
        return others, parts

    def _refund_at_terminal(
        self, kind: str, receipt: str | None, amount: Decimal, tenders, request
    ) -> Outcome | None:
        """Start paying a refund's card part out at the terminal; None when it has no
        card part the terminal made (the caller posts as it always did)."""
        if self.refunding is not None:
            if self.terminal_job is not None or any(p.reference for p in self.refunding.parts):
                return self._next_refund()  # part of it is given: finish that one
            self.refunding = None  # nothing given yet: the new plan replaces it
        try:
            others, parts = self._terminal_parts(receipt, list(tenders))
        except _RefundBlocked as exc:
            return self._no(str(exc))
        if not parts:
            return None
        request = {**request, "staff": self._staff_code()}
        self.refunding = PendingRefund(kind, receipt, amount, request, others, parts)
        return self._next_refund()

    def _journal_request(self, pending: PendingRefund) -> dict[str, Any]:
        return {
            **pending.request,
            "group": pending.group,
            "tenders": [[t.kind, str(t.amount), t.reference] for t in pending.others],
            "parts": [[p.original, str(p.amount)] for p in pending.parts],
        }

    def _next_refund(self) -> Outcome:
        pending = self.refunding
        todo = [p for p in pending.parts if p.reference is None]
        if not todo:
            return self._post_refund()
        if self.terminal_job is not None:
            return self._no("The card terminal is busy: wait for it, then try again")
        part = todo[0]
        if part.row is not None and payments.get(part.row).state in ("requested", "unknown"):
            # its answer was lost: ask the terminal, never send a second refund
            self.terminal_status = "processing"
            self._start_job("refund_settle", self.terminal.last_transaction, context=part)
            return self._ok("Asking the card terminal about the refund")
        if self.card_blocked:
            self._alert(f"Card refunds wait: {self.card_blocked}")
            return self._no(
                "The card refund is not possible right now: the "
                f"{pending.kind} is not posted. A supervisor can refund in cash instead"
            )
        kind = "reversal" if part.reverse else "refund"
        try:  # journaled before the terminal hears of it
            part.row = payments.record_request(
                self.ledger,
                kind,
                part.amount,
                self._terminal_name(),
                part.original,
                self._journal_request(pending),
            )
        except StorageFullError as exc:
            self._storage_failed(exc)
            return self._no("Card refund is not possible: this kiosk's storage is full")
        except LedgerError as exc:
            return self._no(f"Card refund is not possible: {exc}")
        self.terminal_status, self.terminal_texts = "follow", ()
        if part.reverse:
            self._start_job("refund_card", self.terminal.reverse, part.receipt_no, context=part)
            how = "cancelling the card payment on the terminal"
        else:
            self._start_job("refund_card", self.terminal.refund, part.amount, context=part)
            how = "the customer presents the card at the terminal"
        self._emit("payment", kind="card", status="refund", amount=str(part.amount))
        return self._ok(f"Refund {money(part.amount, self.config)} to the card: {how}")

    def _after_refund_card(self, result: TerminalResult, part: CardRefund) -> Outcome:
        self._journal(payments.record_outcome, self.ledger, part.row, result)
        self.terminal_status, self.terminal_texts = result.outcome, ()
        kind = self.refunding.kind if self.refunding else "return"
        if result.approved and result.amount is not None and result.amount != part.amount:
            return self._refund_wrong_amount(part, result)
        if result.approved:
            return self._card_refunded(part, result)
        if result.outcome == "unknown":
            return self._ask_what_happened("refund", part.amount, result, "refund_settle", part)
        part.row = None
        if part.reverse and result.outcome == "declined":  # too late to cancel: refund it
            part.reverse = False
            return self._next_refund()
        if result.outcome == "failed":
            self._alert(f"Card terminal: {result.message}")
        word = {"aborted": "cancelled", "failed": "not possible"}.get(result.outcome, "declined")
        return self._no(
            f"Card refund {word} ({result.message}): the {kind} is not posted. Try again, "
            "or a supervisor can refund in cash instead"
        )

    def _refund_wrong_amount(self, part: CardRefund, result: TerminalResult) -> Outcome:
        """The terminal gave back another amount than asked: the row keeps what it gave
        (so it bounds what can still go back, and Finish again reuses it), the return
        is not posted, staff are told."""
        gave, asked = money(result.amount, self.config), money(part.amount, self.config)
        note = f"the terminal refunded {gave} instead of {asked}"
        self._journal(
            payments.settle, self.ledger, part.row, "unposted", note, amount=result.amount
        )
        self._alert(
            f"Card refund {part.row}: {note} (terminal receipt {result.receipt_no}). "
            "Check the terminal; Finish the return again to refund the rest"
        )
        kind = self.refunding.kind if self.refunding else "return"
        for other in self.refunding.parts if self.refunding else []:
            if other.reference and other.row:  # given: kept, reused when it is done again
                self._journal(
                    payments.settle, self.ledger, other.row, "unposted", "given; return stopped"
                )
        self.refunding = None  # done again, the plan counts what was given
        return self._no(f"Card refund: {note}. The {kind} is not posted: call staff")

    def _card_refunded(self, part: CardRefund, result: TerminalResult) -> Outcome:
        part.reference = result.reference
        if result.customer_receipt:
            self._slips.append(result.customer_receipt)
        if result.merchant_receipt and self.config.payment.print_merchant_receipt:
            self._print_slip("Card refund (merchant copy)", result.merchant_receipt)
        if self.refunding is None:  # pragma: no cover - cleared only after posting
            return self._ok("Card refund approved")
        return self._next_refund()

    def _after_refund_settle(self, last: TerminalResult, part: CardRefund) -> Outcome:
        verdict = self._judge(part.amount, last)
        if verdict != "unreachable" and not any(
            row.state in ("requested", "unknown") and row.id != part.row
            for row in payments.open_payments()
        ):
            self.card_blocked = None
        if verdict == "charged":
            self._journal(payments.record_outcome, self.ledger, part.row, last)
            self.terminal_status = "approved"
            return self._card_refunded(part, last)
        if verdict == "not_charged":
            self._journal(payments.settle, self.ledger, part.row, "not_charged", "not refunded")
            part.row = None
            self.terminal_status = "aborted"
            return self._no(
                "The card refund did not go through. Try again, or a supervisor can refund "
                "in cash instead"
            )
        return self._terminal_silent(
            "card refund",
            part.row,
            part.amount,
            "The card terminal does not answer. The refund waits: please call staff",
        )

    def _post_refund(self) -> Outcome:
        pending = self.refunding
        refunds = [(p.amount, p.reference) for p in pending.parts]
        try:
            with self.ledger.transaction():  # the posting and its card refunds, together
                posted = post_request(self.ledger, self._journal_request(pending), refunds)
                payments.mark_refunds_committed([p.row for p in pending.parts], posted.number)
        except StorageFullError as exc:
            self._storage_failed(exc)
            return self._no(
                f"Could not record the {pending.kind}: this kiosk's storage is full. The card "
                "refund is journaled and posted once there is space. Call staff."
            )
        except LedgerError as exc:
            self._alert(f"Card refund given but the {pending.kind} was not posted: {exc}")
            return self._no(f"Could not post the {pending.kind}: {_sentence(exc)}")
        self.refunding = None
        self.payment = PendingPayment()
        slips, self._slips = self._slips, []
        outcome = self._after_refund(posted)
        for slip in slips:  # the terminal's refund receipt, after ours
            self._print_slip("Card refund", slip)
        return outcome

    def retry_refund(self) -> Outcome:
        """After a declined or cancelled card refund: ask the terminal again."""
        self._record({"refund": "retry"})
        if self.refunding is None:
            return self._no("No refund is waiting")
        return self._next_refund()

    def refund_cash(self) -> Outcome:
        """The card refund was declined (or the terminal is out): a supervisor pays the
        rest in cash instead. Card parts the terminal already approved stay as they are."""
        self._record({"refund": "cash"})
        if self.refunding is None:
            return self._no("No refund is waiting")
        if self.terminal_job is not None:
            return self._no("The card terminal is still working: wait for its answer")
        for part in self.refunding.parts:
            unsettled = part.row and payments.get(part.row).state in ("requested", "unknown")
            if unsettled and part.reference is None:
                return self._no("The card refund is not settled yet: ask the terminal again first")
        return self._ask_staff("refund_cash", (), SUPERVISOR, "A cash refund instead of the card")

    def _approved_refund_cash(self) -> Outcome:
        pending = self.refunding
        if pending is None:
            return self._no("No refund is waiting")
        done = [p for p in pending.parts if p.reference is not None]
        card = sum((p.amount for p in pending.parts if p.reference is None), ZERO)
        non_cash = [t for t in pending.others if t.kind != CASH]
        exact = pending.amount + sum((t.amount for t in non_cash), ZERO)
        exact -= sum((p.amount for p in done), ZERO)
        policy = self.ledger.policy
        cash = round_cash(exact, policy.cash_step, policy.unit)
        pending.others = [*non_cash, *([Tender(CASH, -cash)] if cash else [])]
        pending.parts = done
        audit.record(
            "refund_cash", self._staff_code(), pending.receipt, "card", str(card), str(cash)
        )
        return self._post_refund()

    def cancel_refund(self) -> Outcome:
        """Give up a refund that waits for the terminal; not once a card part was given."""
        self._record({"refund": "cancel"})
        if self.refunding is None:
            return self._no("No refund is waiting")
        if self.terminal_job is not None:
            return self._no("The card terminal is still working: wait for its answer")
        if any(p.reference for p in self.refunding.parts):
            return self._no(
                "Part of it is already refunded to the card: finish it (cash for the rest)"
            )
        self.refunding = None
        return self._ok("Refund cancelled: nothing was posted or refunded")

    def reprint(self, receipt: str | None = None) -> Outcome:
        self._record({"reprint": receipt or True})
        refusal = self._need(ANY_STAFF)
        if refusal:
            return self._no(refusal)
        number = receipt or (self.last_posted.number if self.last_posted else None)
        if number is None:
            queued = receipts.unprinted()
            if not queued:
                return self._no("No receipt to reprint")
            number = queued[-1].ref
        try:
            return self._print_receipt(number, reprint=True)
        except LedgerError as exc:
            return self._no(_sentence(exc))

    def reprint_failed(self) -> Outcome:
        """Print every receipt a printer fault left in the queue."""
        self._record({"reprint": "failed"})
        refusal = self._need(ANY_STAFF)
        if refusal:
            return self._no(refusal)
        jobs = [j for j in receipts.unprinted() if j.kind == "receipt"]
        done = 0
        for job in jobs:
            try:
                self.printer.print_receipt(receipts.receipt_for(self.ledger, job.ref, True))
            except PrinterError as exc:
                receipts.mark_failed(job, str(exc))
                return self._no(f"Printer: {exc}. {len(jobs) - done} receipt(s) still queued")
            receipts.mark_printed(job)
            done += 1
        return self._ok(f"Reprinted {done} receipt(s)")

    # counts

    def start_count(self) -> Outcome:
        self._record({"start": "count"})
        refusal = self._need(ANY_STAFF) or self._staff_state()
        if refusal:
            return self._no(refusal)
        self._close_flows()
        self.counting = CountFlow()
        self._to(State.COUNTING)
        return self._ok("Count: scan every item on the shelf")

    def _count_scan(self, parsed: Parsed) -> Outcome:
        try:
            scanned = catalog.resolve_scan(parsed)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        item = scanned.item
        units = sales.base_units(item.unit, scanned.qty, item.sku) if item.unit == "each" else None
        if units is None:
            return self._no(f"{item.name} is weighed: enter the count in grams")
        flow = self.counting
        if item.sku not in flow.counted and len(flow.counted) >= numbers.MAX_EVENT_LINES:
            return self._no(_FULL_COUNT)
        if flow.counted.get(item.sku, 0) + units > numbers.MAX_STOCK_QTY:
            return self._no(f"At most {numbers.MAX_STOCK_QTY} of one item in a count")
        flow.counted[item.sku] = flow.counted.get(item.sku, 0) + units
        flow.moments[item.sku] = self.clock()
        return self._ok(f"{item.name}: {flow.counted[item.sku]} counted")

    def set_count(self, sku: str, qty: int) -> Outcome:
        self._record({"set_count": {"sku": sku, "qty": qty}})
        if self.state != State.COUNTING or self.counting is None:
            return self._no("Start a count first")
        try:
            qty = numbers.whole(qty, "count", maximum=numbers.MAX_STOCK_QTY)
        except ValueError as exc:
            return self._no(_sentence(exc))
        try:
            catalog.get_item(sku)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        if (
            sku not in self.counting.counted
            and len(self.counting.counted) >= numbers.MAX_EVENT_LINES
        ):
            return self._no(_FULL_COUNT)
        self.counting.counted[sku] = qty
        self.counting.moments[sku] = self.clock()
        return self._ok(f"{sku}: {qty} counted")

    def finish_count(self) -> Outcome:
        self._record({"finish": "count"})
        flow = self.counting
        if self.state != State.COUNTING or flow is None or not flow.counted:
            return self._no("Nothing counted yet")
        try:
            posted = stock.count(self.ledger, flow.counted, self._staff_code(), flow.moments)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        self.counting = None
        self._to(State.STAFF_MENU)
        self._emit("posted", receipt=posted.number, total="0")
        return self._ok(f"Count {posted.number} posted: {len(flow.counted)} item(s)")

    # receiving

    def start_receiving(self, reference: str | None = None) -> Outcome:
        self._record({"start": "receiving", "reference": reference})
        refusal = self._need(ANY_STAFF) or self._staff_state()
        if refusal:
            return self._no(refusal)
        self._close_flows()
        self.receiving = ReceivingFlow(reference)
        self._to(State.RECEIVING)
        return self._ok("Receiving: scan every item or case delivered")

    def _receive_scan(self, parsed: Parsed) -> Outcome:
        try:
            scanned = catalog.resolve_scan(parsed)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        item = scanned.item
        if item.unit != "each":
            return self._no(f"{item.name} is weighed: enter the grams received")
        flow = self.receiving
        if flow.received.get(item.sku, 0) + int(scanned.qty) > numbers.MAX_STOCK_QTY:
            return self._no(f"At most {numbers.MAX_STOCK_QTY} of one item per delivery")
        flow.received[item.sku] = flow.received.get(item.sku, 0) + int(scanned.qty)
        return self._ok(f"{item.name}: {flow.received[item.sku]} received")

    def receive_item(self, sku: str, qty: int) -> Outcome:
        self._record({"receive_item": {"sku": sku, "qty": qty}})
        if self.state != State.RECEIVING or self.receiving is None:
            return self._no("Start receiving first")
        try:
            qty = numbers.whole(qty, "quantity received", minimum=1, maximum=numbers.MAX_STOCK_QTY)
        except ValueError as exc:
            return self._no(_sentence(exc))
        try:
            catalog.get_item(sku)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        flow = self.receiving
        if flow.received.get(sku, 0) + qty > numbers.MAX_STOCK_QTY:
            return self._no(f"At most {numbers.MAX_STOCK_QTY} of one item per delivery")
        flow.received[sku] = flow.received.get(sku, 0) + qty
        return self._ok(f"{sku}: {flow.received[sku]} received")

    def finish_receiving(self) -> Outcome:
        self._record({"finish": "receiving"})
        flow = self.receiving
        if self.state != State.RECEIVING or flow is None or not flow.received:
            return self._no("Nothing received yet")
        try:
            posted = stock.receive(
                self.ledger,
                [stock.ReceiveLine(sku, qty) for sku, qty in sorted(flow.received.items())],
                self._staff_code(),
                flow.reference,
            )
        except LedgerError as exc:
            return self._no(_sentence(exc))
        self.receiving = None
        self._to(State.STAFF_MENU)
        self._emit("posted", receipt=posted.number, total="0")
        return self._ok(f"Received {posted.number}: {sum(flow.received.values())} unit(s)")

    # kits

    def start_kit(self, sku: str) -> Outcome:
        self._record({"start": "kit", "sku": sku})
        refusal = self._need(ANY_STAFF) or self._staff_state()
        if refusal:
            return self._no(refusal)
        try:
            kit = catalog.get_item(sku)
            if not kit.kit:
                raise LedgerError(f"{sku} is not a kit")
            bom, components = catalog.current_bom(sku)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        self._close_flows()
        self.kit = KitFlow(
            sku=kit.sku,
            name=kit.name,
            components=[
                (c.component_id, catalog.get_item(c.component_id).name, c.qty,
                 stock.on_hand(c.component_id))
                for c in components
            ],
        )  # fmt: skip
        self._to(State.KIT)
        parts = ", ".join(f"{per} x {name}" for _, name, per, _ in self.kit.components)
        return self._ok(f"{kit.name} (BOM v{bom.version}): {parts}")

    def build_kit(self, qty: int = 1, lot: str | None = None, force: bool = False) -> Outcome:
        self._record({"build": {"qty": qty, "lot": lot, "force": force}})
        flow = self.kit
        if self.state != State.KIT or flow is None:
            return self._no("Choose a kit first")
        try:
            qty = numbers.whole(qty, "kits to build", minimum=1, maximum=numbers.MAX_PIECES)
        except ValueError as exc:
            return self._no(_sentence(exc))
        short = flow.shortfall(qty)
        if short and not (force and self.staff and self.staff.role == "supervisor"):
            return self._no("Not enough components: " + "; ".join(short))
        try:
            posted = stock.build_kit(self.ledger, flow.sku, qty, self._staff_code(), lot)
            label = receipts.kit_label_for(self.ledger, posted.number)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        self._emit("posted", receipt=posted.number, total="0")
        printed = 0
        for _ in range(qty):
            job = receipts.enqueue(self.ledger, "kit_label", posted.number)
            try:
                self.printer.print_kit_label(label)
            except PrinterError as exc:
                receipts.mark_failed(job, str(exc))
                self._alert(f"Printer: {exc}. Kit labels for {posted.number} are queued")
                break
            receipts.mark_printed(job)
            printed += 1
        self.kit = None
        self._to(State.STAFF_MENU)
        return self._ok(f"Built {qty} x {flow.name} ({posted.number}); {printed} label(s) printed")

    # reports

    def end_of_day(self, opening_float: object = "0") -> Outcome:
        self._record({"report": "z", "float": str(opening_float)})
        refusal = self._need(SUPERVISOR)
        if refusal:
            return self._no(refusal)
        try:
            float_value = self._typed_money(opening_float, "opening float")
        except ValueError as exc:
            return self._no(_sentence(exc))
        z = reports.z_report(self.clock().astimezone().date(), float_value)
        lines = tuple(z_report_lines(z, self.config))
        try:
            self.printer.print_report(TextReport(lines[0], lines))
        except PrinterError as exc:
            self._alert(f"Printer: {exc}. The Z report is on screen only")
        text = f"Z report: cash expected {money(z.cash_expected, self.config)}"
        if self.terminal.kind != "manual":  # ours is done; the terminal's day follows
            why = None
            if self.terminal_job is not None:
                why = "it is busy"
            elif self.card_blocked:
                why = f"a card payment is not settled ({self.card_blocked})"
            if why:
                self._alert(
                    f"Card terminal end of day not run: {why}. Run it later "
                    "(kiosk hw payment --end-of-day)"
                )
            else:
                self.terminal_status = "processing"
                self._start_job("end_of_day", self.terminal.end_of_day, context=z)
                text += "; the card terminal is closing its day"
        return self._ok(text, report=z, lines=lines)

    def _after_end_of_day(self, result: TerminalResult, z) -> Outcome:
        """The terminal's end of day, printed after our Z report. A failure never takes
        the Z report back: staff are told to run it again."""
        self.terminal_status = None
        if not result.approved:
            self._alert(
                f"Card terminal end of day failed ({result.message}); the Z report is "
                "complete. Run it again: kiosk hw payment --end-of-day"
            )
            return self._no(
                f"Z report done; the card terminal's end of day failed: {result.message}"
            )
        self._journal(payments.record_end_of_day, self.ledger, self._staff_code(), result)
        ours = z.tenders.get("card", ZERO)
        lines = [f"Card terminal end of day {z.day.isoformat()}"]
        if result.terminal_id:
            lines.append(f"terminal id {result.terminal_id}")
        if result.amount is not None:
            lines.append(f"terminal total      {money(result.amount, self.config)}")
        lines.append(f"kiosk card tenders  {money(ours, self.config)}")
        if result.amount is not None and result.amount != ours:
            lines.append(f"difference          {money(result.amount - ours, self.config)}")
            lines.append("(the terminal counts its batch since its last end of day)")
        lines += list(result.admin_receipt)
        try:
            self.printer.print_report(TextReport(lines[0], tuple(lines)))
        except PrinterError as exc:
            self._alert(f"Printer: {exc}. The card terminal's totals are on screen only")
        total = money(result.amount, self.config) if result.amount is not None else "-"
        return self._ok(f"Card terminal day closed: terminal total {total}", lines=tuple(lines))

    # ------------------------------------------------------------ unsettled payments

    def list_payments(self) -> Outcome:
        """Staff: the card payments and refunds that are not settled, one line each."""
        self._record({"payments": "list"})
        refusal = self._need(ANY_STAFF)
        if refusal:
            return self._no(refusal)
        self.payments_view = [payments.describe(row) for row in payments.unsettled()]
        if self.refunding is not None:
            pending = self.refunding
            left = sum((p.amount for p in pending.parts if p.reference is None), ZERO)
            self.payments_view.insert(
                0,
                f"waiting: {pending.kind} of {pending.receipt or '-'}, "
                f"{money(left, self.config)} to the card",
            )
        if not self.payments_view:
            return self._ok("No unsettled card payments", payments=[])
        return self._ok(
            f"{len(self.payments_view)} card payment(s) need attention",
            payments=list(self.payments_view),
        )

    def retry_payments(self) -> Outcome:
        """Staff: ask the terminal about unsettled payments now (not in 30 s)."""
        self._record({"payments": "retry"})
        refusal = self._need(ANY_STAFF)
        if refusal:
            return self._no(refusal)
        if self.terminal.kind == "manual":
            return self._no("No card terminal is connected: resolve them by hand")
        if self.terminal_job is not None:
            return self._no("The card terminal is busy: try again in a moment")
        outcome = self.recover_payments()
        if self.terminal_job is None:
            return self.list_payments()
        return outcome

    def resolve_payment_text(self, text: str) -> Outcome:
        """The screen's text entry: "<payment number> <reason>"."""
        number, _, reason = text.strip().partition(" ")
        return self.resolve_payment(number.lstrip("#"), reason)

    def resolve_payment(self, payment_id: object, reason: str = "") -> Outcome:
        """A supervisor settled a payment by hand (refunded it at the terminal, found
        it on the terminal's receipts): recorded with the reason, audited."""
        if payments.looks_like_card_number(reason):
            return self._no("The reason looks like it holds a card number: leave it out")
        self._record({"resolve": {"payment": str(payment_id), "reason": reason}})
        refusal = self._need(SUPERVISOR)
        if refusal:
            return self._no(refusal)
        try:
            pid = numbers.whole(payment_id, "payment", minimum=1, maximum=2**62)
        except ValueError as exc:
            return self._no(_sentence(exc))
        if self.refunding and pid in {p.row for p in self.refunding.parts}:
            return self._no("That refund is waiting here: finish or cancel it first")
        try:
            row = payments.resolve(self.ledger, pid, self._staff_code(), reason)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        if not payments.open_payments():
            self.card_blocked = None
        self.list_payments()
        return self._ok(f"Payment {row.id} resolved by hand: {reason.strip()}")


def _sale_line_json(line: sales.SaleLine) -> dict[str, Any]:
    return {
        "sku": line.sku,
        "qty": str(line.qty),
        "price": None if line.price is None else str(line.price),
        "discount": str(line.discount),
        "amount": None if line.amount is None else str(line.amount),
        "barcode": line.barcode,
        "lot": line.lot,
    }


def _sale_line(data: dict[str, Any]) -> sales.SaleLine:
    def number(key: str) -> Decimal | None:
        return None if data.get(key) is None else Decimal(data[key])

    return sales.SaleLine(
        data["sku"],
        Decimal(data["qty"]),
        number("price"),
        number("discount") or ZERO,
        number("amount"),
        data.get("barcode"),
        data.get("lot"),
    )


def post_request(ledger: Ledger, request: dict[str, Any], refunds) -> Posted:
    """Post a refund's return, exchange or void as journaled with its card refunds
    (`refunds`: (amount, reference) each, amount positive): card first, then the rest
    as planned. Runs inside the caller's transaction; used again after a restart."""
    tenders = [Tender("card", -Decimal(amount), reference) for amount, reference in refunds]
    tenders += [Tender(k, Decimal(a), ref) for k, a, ref in request.get("tenders", [])]
    kind, receipt, staff = request["kind"], request.get("receipt"), request.get("staff")
    if kind == "void":
        return sales.post_void(ledger, receipt, staff, request.get("reason", "post_void"), tenders)
    lines = [
        sales.ReturnLine(li["sku"], Decimal(li["qty"]), li.get("condition", "resaleable"))
        for li in request["lines"]
    ]
    reason = request.get("reason", "unwanted")
    if kind == "exchange":
        sold = [_sale_line(li) for li in request.get("sold", [])]
        return sales.post_exchange(ledger, receipt, lines, sold, tenders, staff, reason)
    return sales.post_return(ledger, lines, reason, staff, receipt=receipt, tenders=tenders)


def _merge_returns(lines: list[sales.ReturnLine]) -> list[sales.ReturnLine]:
    merged: dict[tuple[str, str], Decimal] = {}
    for line in lines:
        key = (line.sku, line.condition)
        merged[key] = merged.get(key, ZERO) + line.qty
    return [sales.ReturnLine(sku, qty, cond) for (sku, cond), qty in merged.items()]


def _receipt_of(reference: str | None) -> str | None:
    """The terminal receipt number in a tender's reference ("T29001006 R0042 ...")."""
    found = re.search(r"\bR(\d+)\b", reference or "")
    return found.group(1) if found else None


def _is_ours(last: TerminalResult, amount: Decimal, known) -> bool:
    """The terminal's last transaction is the one whose answer was lost: approved, a
    receipt number the journal has not seen, and the same amount."""
    return bool(
        last.approved and last.receipt_no and last.receipt_no not in known and last.amount == amount
    )


def _qty(line: CartLine) -> str:
    return f"{line.qty} kg" if line.unit == "kg" else str(line.qty)


def _sentence(exc: Exception) -> str:
    text = str(exc)
    return text[:1].upper() + text[1:] if text else "Something went wrong"
