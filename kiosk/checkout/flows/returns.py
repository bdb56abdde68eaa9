"""Returns and exchanges (and voids): the receipt, the items coming back, what goes
out instead, and the finish that posts it or hands its card part to the terminal."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kiosk import i18n
from kiosk.checkout.cart import Cart, CartLine
from kiosk.checkout.core import (
    CUSTOMER_STATES,
    SELLING_STAFF,
    SUPERVISOR,
    Flow,
    Outcome,
    PendingPayment,
    State,
    _quantity,
    _sentence,
    kind_name,
)
from kiosk.checkout.refunds import _sale_line_json
from kiosk.checkout.report_text import money_arg
from kiosk.ledger import catalog, sales
from kiosk.ledger.barcodes import BarcodeError, Parsed
from kiosk.ledger.core import LedgerError
from kiosk.ledger.money import CASH, ZERO
from kiosk.ledger.posting import Posted
from kiosk.ledger.sales import ReturnLine


@dataclass
class ReturnFlow:
    receipt: str | None = None
    lines: list[ReturnLine] = field(default_factory=list)
    sold: list[CartLine] = field(default_factory=list)  # exchange: what goes out instead
    reason: str = "unwanted"


def _view(flow: ReturnFlow) -> dict[str, Any]:
    return {
        "receipt": flow.receipt,
        "lines": [f"{li.qty} x {li.sku} ({li.condition})" for li in flow.lines],
        "exchange": [li.name for li in flow.sold],
    }


FLOW = Flow(State.RETURNING, "returning", "_return_scan", "returning", _view)


class ReturnsMixin:
    returning: ReturnFlow | None

    def start_return(self, receipt: str | None = None) -> Outcome:
        self._record({"start": "return", "receipt": receipt})
        refused = self._open_flow(State.RETURNING, ReturnFlow(), SELLING_STAFF)
        if refused:
            return refused
        if receipt:
            return self._receipt_scan(receipt)
        return self._ok(
            i18n._("Scan the receipt barcode, or the items for a return without receipt")
        )

    def _receipt_scan(self, number: str) -> Outcome:
        if self.state != State.RETURNING:
            if self.state in CUSTOMER_STATES and not self.staff:
                return self._no(i18n._("Returns are done by staff: please call staff"))
            started = self.start_return()
            if not started.ok:
                return started
        try:
            original = sales.find_receipt(number)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        self.returning.receipt = original.number
        return self._ok(
            i18n._("Receipt {number}: scan the items coming back", number=original.number)
        )

    def _return_scan(self, parsed: Parsed) -> Outcome:
        try:
            scanned = catalog.resolve_scan(parsed)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        return self.return_item(scanned.item.sku, scanned.qty)

    def return_item(self, sku: str, qty: object = "1", condition: str = "resaleable") -> Outcome:
        self._record({"return_item": {"sku": sku, "qty": str(qty), "condition": condition}})
        if self.state != State.RETURNING or self.returning is None:
            return self._no(i18n._("Start a return first"))
        try:
            value = _quantity(qty)
        except ValueError as exc:
            return self._no(_sentence(exc))
        if condition not in sales.CONDITIONS:
            return self._no(
                i18n._("Condition must be one of {choices}", choices=", ".join(sales.CONDITIONS))
            )
        flow = self.returning
        lines = [*flow.lines, sales.ReturnLine(sku, value, condition)]
        try:
            sales.preview_return(self.ledger, flow.receipt, _merge_returns(lines))
        except LedgerError as exc:
            return self._no(_sentence(exc))
        flow.lines = lines
        return self._ok(
            i18n._("Return {qty} x {sku} ({condition})", qty=value, sku=sku, condition=condition)
        )

    def exchange_item(self, code: str) -> Outcome:
        """During a return: scan what the customer takes instead (an exchange)."""
        self._record({"exchange_scan": code})
        if self.state != State.RETURNING or self.returning is None:
            return self._no(i18n._("Start a return first"))
        try:
            scanned = catalog.resolve_scan(self.ledger.parser.parse(code))
        except (BarcodeError, LedgerError) as exc:
            return self._no(_sentence(exc))
        item = scanned.item
        self.returning.sold.append(
            CartLine.from_item(item, scanned.qty, scanned.barcode, scanned.amount, scanned.lot)
        )
        return self._ok(i18n._("Exchange: {name} goes out instead", name=item.name))

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
            return self._no(i18n._("Scan the items coming back first"))
        if reason not in sales.RETURN_REASONS:
            return self._no(
                i18n._("Reason must be one of {choices}", choices=", ".join(sales.RETURN_REASONS))
            )
        flow.reason = reason
        if flow.sold:
            difference = self._exchange_preview(flow)
            self.payment = PendingPayment(kind="exchange", exchange=flow)
            if difference > 0:
                self._to(State.PAYING)
                return self._ok(
                    i18n._(
                        "Exchange: customer pays {difference}",
                        difference=money_arg(difference, self.config),
                    )
                )
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
            i18n._(
                "{kind} {number}: refund {amount}",
                kind=kind_name(posted.kind).sentence(),
                number=posted.number,
                amount=money_arg(-posted.due, self.config),
            ),
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


def _merge_returns(lines: list[sales.ReturnLine]) -> list[sales.ReturnLine]:
    merged: dict[tuple[str, str], Decimal] = {}
    for line in lines:
        key = (line.sku, line.condition)
        merged[key] = merged.get(key, ZERO) + line.qty
    return [sales.ReturnLine(sku, qty, cond) for (sku, cond), qty in merged.items()]
