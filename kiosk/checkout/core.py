"""The checkout's core: states, events, the session's attributes and staff approvals.

    attract -> scanning -> paying -> receipt -> attract
    any state -> help (call staff) -> back where it was
    staff login (PIN or badge) from any state; the staff menu opens the flows

Every UI action is a method returning an `Outcome` (never raising for a user's
mistake); every change is announced to subscribers as an `Event`. The `Checkout`
(session.py) is this core plus one mixin per concern: selling, paying, the card
terminal, and one module per staff flow (kiosk/checkout/flows/), each registered
here as a `Flow` so the core routes scans to it and closes it without knowing it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from kiosk import i18n, numbers
from kiosk.checkout.cart import Cart
from kiosk.drivers.base import CashDrawer, MemoryDrawer, MemoryPrinter, ReceiptPrinter
from kiosk.drivers.payment import ManualTerminal, PaymentTerminal, TerminalJob
from kiosk.i18n import N_
from kiosk.ledger import audit, catalog
from kiosk.ledger import staff as staff_service
from kiosk.ledger.barcodes import BarcodeError, ReceiptRef, StaffBadge
from kiosk.ledger.core import Ledger, LedgerError, StorageFullError
from kiosk.ledger.models import Staff, utc_now
from kiosk.ledger.money import Tender
from kiosk.ledger.posting import Posted
from kiosk.ledger.staff import either, role_name

if TYPE_CHECKING:
    from kiosk.checkout.flows.returns import ReturnFlow
    from kiosk.checkout.refunds import PendingRefund


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
class PendingPayment:
    """What PAYING will post once covered: a sale, or the balance of an exchange."""

    kind: str = "sale"  # sale or exchange
    tenders: list[Tender] = field(default_factory=list)
    exchange: ReturnFlow | None = None


@dataclass(frozen=True)
class Approval:
    """An action waiting for staff: performed when an allowed member logs in."""

    action: str
    args: tuple
    roles: tuple[str, ...]
    reason: str
    amount: Decimal | None = None


@dataclass(frozen=True)
class Flow:
    """A staff flow as the core sees it: the state it runs in, the Checkout attribute
    holding its open state (None while closed), the method taking scans in that state,
    and its entry in `snapshot` (key, and the open state as plain data)."""

    state: State
    attr: str
    scan: str
    key: str
    view: Callable[[Any], Any]


FLOWS: dict[State, Flow] = {}  # filled by kiosk/checkout/flows/__init__.py, in its order


def register(flow: Flow) -> Flow:
    """Make a flow known to the core: its scans, its closing, its snapshot entry."""
    FLOWS[flow.state] = flow
    return flow


def _decimal(
    value: object, what: str, maximum=numbers.MAX_MONEY, places=numbers.MAX_PLACES
) -> Decimal:
    """A number a person typed, zero or more, within the documented bounds (kiosk.numbers)."""
    return numbers.decimal(value, what, minimum=0, maximum=maximum, places=places)


def _quantity(value: object) -> Decimal:
    """A quantity as typed, before the line's unit is known: pieces or kg."""
    return _decimal(value, N_("quantity"), numbers.MAX_WEIGHT, numbers.WEIGHT_PLACES)


def _sentence(exc: Exception) -> str:
    """An exception's text shown as a sentence: a Message stays one (its first letter
    upper-case in every language, so the screen can still translate it)."""
    text = i18n.message_of(exc)
    if isinstance(text, i18n.Message):
        return text.sentence()
    text = str(exc)
    return i18n.upper_first(text) if text else i18n._("Something went wrong")


KINDS = {
    "sale": N_("sale"),
    "return": N_("return"),
    "exchange": N_("exchange"),
    "void": N_("void"),
    "card payment": N_("card payment"),
    "refund": N_("refund"),
    "reversal": N_("reversal"),
}


def kind_name(kind: str) -> i18n.Message:
    """A kind of transaction or payment as its reader calls it ("Rückgabe")."""
    return i18n.Message(KINDS.get(kind, kind))


def _said(exc: BaseException) -> str:
    """An exception's text as it is (not capitalised): its Message when it has one."""
    return i18n.text_of(exc)


class CheckoutCore:
    """What every part of the session shares: its attributes, events, storage state,
    staff login and approvals, the scan router and the idle clock."""

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
        self._close_flows()  # each registered flow's open state: None while closed
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
            self._alert(
                i18n._(
                    "Storage full, sales cannot be recorded; the open cart is kept. {error}",
                    error=exc,
                )
            )
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
        self._emit("message", text=i18n._("Storage has space again: selling resumes"))
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
            return i18n._("Scan an item to start")
        return i18n._("Staff login needed")

    @property
    def totals(self):
        return self.cart.priced()

    def _typed_money(self, value: object, what: str) -> Decimal:
        """An amount a person typed, in the currency's minor unit (kiosk.numbers)."""
        return numbers.money(value, what, self.ledger.policy.unit)

    def between_sales(self, action: Callable[[], object]) -> Outcome:
        """Run `action` (e.g. applying a new item master version) only while no sale is
        open: a cart keeps the prices it was scanned at until it is paid or abandoned."""
        if self.cart or self.state not in (State.ATTRACT, State.RECEIPT):
            return Outcome(False, i18n._("a sale is open"))
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
                    "unit": li.unit,
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
            **{
                flow.key: flow.view(getattr(self, flow.attr)) if getattr(self, flow.attr) else None
                for flow in FLOWS.values()
            },
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

    def scan(self, code: str) -> Outcome:
        """A barcode from the scanner: routed by what the kiosk is doing."""
        self._record({"scan": code})
        try:
            parsed = self.ledger.parser.parse(code)
        except BarcodeError as exc:
            return self._no(
                i18n._(
                    "Cannot read that barcode ({reason}). Try again or call staff.",
                    reason=exc.reason,
                )
            )
        if isinstance(parsed, StaffBadge):
            return self._badge(parsed.code)
        if isinstance(parsed, ReceiptRef):
            return self._receipt_scan(parsed.number)
        flow = FLOWS.get(self.state)
        if flow is not None:  # a staff flow is open: its own scan handling
            return getattr(self, flow.scan)(parsed)
        return self._sale_scan(parsed)

    def call_staff(self) -> Outcome:
        self._record({"help": True})
        if self.state != State.HELP:
            self.help_from = self.state
            self._to(State.HELP)
        self._alert(i18n._("Customer asks for help"))
        return self._ok(i18n._("Staff has been called and will be with you shortly"))

    def staff_login(self, pin: str | None = None, code: str | None = None) -> Outcome:
        """PIN login (with a badge code, or PIN alone). A session log records who
        logged in, never the PIN; replaying that entry logs in by code."""
        if pin is None and code is None:
            self._record({"staff": {"failed": True}})
            return self._no(i18n._("Enter a PIN"))
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
            raise LedgerError(i18n._("unknown or inactive staff badge {code}", code=code))
        audit.record("login_badge", member.code)
        return member

    def _badge(self, code: str) -> Outcome:
        if not self.config.checkout.badge_login:
            return self._no(i18n._("Badge login is off: enter your PIN"))
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
                return self._no(
                    i18n._(
                        "{reason} needs a {roles}",
                        reason=pending.reason,
                        roles=either(pending.roles),
                    )
                )
            audit.record("approval", member.code, pending.action, detail=pending.reason)
            if self.state == State.HELP:
                self._to(self.help_from or State.SCANNING)
            return getattr(self, "_approved_" + pending.action)(*pending.args)
        if self.cart.waiting_for_approval and member.role in SELLING_STAFF:
            return self._approved_approve_age()  # staff came to the kiosk: that is the check
        if self.state == State.HELP:
            self._to(self.help_from or State.ATTRACT)
            self.help_from = None
            return self._ok(i18n._("Hello {name}: help given", name=member.name))
        if self.state == State.ATTRACT:
            self._to(State.STAFF_MENU if self.role == "self-checkout" else State.SCANNING)
        return self._ok(
            i18n._("Hello {name} ({role})", name=member.name, role=role_name(member.role))
        )

    def staff_logout(self) -> Outcome:
        self._record({"logout": True})
        if not self.staff:
            return self._no(i18n._("Nobody is logged in"))
        name = self.staff.name
        self.staff = None
        self._emit("staff", code=None)
        if self.state in STAFF_STATES:
            self._close_flows()
            self._to(State.ATTRACT)
        return self._ok(i18n._("Goodbye {name}", name=name))

    def _close_flows(self) -> None:
        for flow in FLOWS.values():
            setattr(self, flow.attr, None)

    def _ask_staff(self, action: str, args: tuple, roles: tuple[str, ...], reason: str):
        if self.staff and self.staff.role in roles:
            return getattr(self, "_approved_" + action)(*args)
        self.pending = Approval(action, args, roles, reason)
        if self.state != State.HELP:
            self.help_from = self.state
            self._to(State.HELP)
        self._alert(i18n._("{reason} needs {roles} approval", reason=reason, roles=either(roles)))
        return self._no(i18n._("{reason} needs staff: someone is on the way", reason=reason))

    def _staff_code(self) -> str | None:
        return self.staff.code if self.staff else None

    def approve(self) -> Outcome:
        """A cashier confirms the age-restricted items in the cart."""
        self._record({"approve": True})
        if not self.staff or self.staff.role not in SELLING_STAFF:
            return self._ask_staff("approve_age", (), SELLING_STAFF, i18n._("An age check"))
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
        done = i18n._("Age check done") if waiting else i18n._("Nothing waits for approval")
        return self._ok(done)

    def _need(self, roles: tuple[str, ...]) -> str | None:
        if not self.staff:
            return i18n._("Staff login needed")
        if self.staff.role not in roles:
            return i18n._("Needs a {roles}", roles=either(roles))
        return None

    def _staff_state(self) -> str | None:
        if self.state in (State.PAYING, State.RECEIPT) or self.cart:
            return i18n._("Finish or cancel the sale first")
        return None

    def _open_flow(self, state: State, opened: Any, roles: tuple[str, ...]) -> Outcome | None:
        """Open a staff flow for a member with `roles` while no sale is open: None, or
        the refusal."""
        refusal = self._need(roles) or self._staff_state()
        if refusal:
            return self._no(refusal)
        self._close_flows()
        setattr(self, FLOWS[state].attr, opened)
        self._to(state)
        return None

    def _flow_posted(self, posted: Posted, text: str) -> Outcome:
        """The open flow was posted: it closes, back to the staff menu."""
        setattr(self, FLOWS[self.state].attr, None)
        self._to(State.STAFF_MENU)
        self._emit("posted", receipt=posted.number, total="0")
        return self._ok(text)

    def _typed_stock(self, sku: str, qty: object, what: str, minimum: int) -> int | Outcome:
        """A typed whole quantity of a known item (counts, receiving), or the refusal."""
        try:
            value = numbers.whole(qty, what, minimum=minimum, maximum=numbers.MAX_STOCK_QTY)
        except ValueError as exc:
            return self._no(_sentence(exc))
        try:
            catalog.get_item(sku)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        return value

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
            self._alert(i18n._("Customer left during payment: staff needed"))
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
