"""Selling: the cart's lines and quantities, lookups, price overrides and discounts,
and abandoning a cart. Kept apart from paying so each reads on its own."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal

from kiosk import i18n, numbers
from kiosk.checkout.cart import CartLine
from kiosk.checkout.core import (
    ANY_STAFF,
    SUPERVISOR,
    Outcome,
    PendingPayment,
    State,
    _decimal,
    _quantity,
    _said,
    _sentence,
)
from kiosk.checkout.report_text import money_arg
from kiosk.i18n import N_
from kiosk.ledger import audit, catalog
from kiosk.ledger.barcodes import Parsed
from kiosk.ledger.core import LedgerError
from kiosk.ledger.money import ZERO

_TOO_MUCH = i18n._(
    "A sale can total at most {most}: pay for this part first", most=numbers.MAX_MONEY
)


class SellingMixin:
    """The customer's (or cashier's) side before paying: lines in, lines out."""

    def _selling_allowed(self) -> str | None:
        if self.state in (State.PAYING, State.RECEIPT):
            return i18n._("Finish the payment first")
        if self.state == State.STAFF_MENU:
            return i18n._("Leave the staff menu to sell")
        if self.role != "self-checkout" and not self.staff:
            return i18n._("Staff login needed to sell at this till")
        if self.role == "mobile-cart" and not self.config.checkout.cart_tendering:
            return i18n._("This cart does not sell: use item lookup, counts or receiving")
        if not self.cart and not self._storage_ok():
            return i18n._("This kiosk cannot record sales now (storage full). Please call staff.")
        return None

    def _sale_scan(self, parsed: Parsed) -> Outcome:
        refusal = self._selling_allowed()
        if refusal:
            return self._no(refusal)
        try:
            scanned = catalog.resolve_scan(parsed)
        except LedgerError as exc:
            return self._no(
                i18n._("{error}. Look it up by name or call staff.", error=_sentence(exc))
            )
        qty = scanned.qty
        if self.next_qty is not None and scanned.amount is None and scanned.item.unit == "each":
            qty *= self.next_qty
        self.next_qty = None
        return self._add_line(scanned.item, qty, scanned.barcode, scanned.amount, scanned.lot)

    def _add_line(self, item, qty, barcode=None, amount=None, lot=None) -> Outcome:
        skus = {li.sku for li in self.cart.lines}
        if item.sku not in skus and len(skus) >= numbers.MAX_EVENT_LINES:
            return self._no(
                i18n._(
                    "A sale holds at most {most} different items",
                    most=numbers.MAX_EVENT_LINES,
                )
            )
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
        words = {"name": shown.name, "qty": _qty(shown), "total": money_arg(total, self.config)}
        if needs_check:
            text = i18n._(
                "{name} x {qty}: total {total} (age {age}+: staff will check)",
                age=item.min_age,
                **words,
            )
        else:
            text = i18n._("{name} x {qty}: total {total}", **words)
        return self._ok(text, line=number, total=total)

    def _too_much(self, more: Decimal) -> bool:
        """Would the sale's total pass what one sale may total (kiosk.numbers)?"""
        return self.cart.priced().total + more > numbers.MAX_MONEY

    def quantity(self, qty: object) -> Outcome:
        """Quantity entry: the last line's quantity, or a multiplier for the next scan."""
        self._record({"qty": str(qty)})
        try:
            value = _quantity(qty)
        except ValueError as exc:
            return self._no(_sentence(exc))
        if value <= 0 or value > numbers.MAX_PIECES:
            return self._no(
                i18n._("Quantity must be between 1 and {most}", most=numbers.MAX_PIECES)
            )
        if not self.cart or self.state != State.SCANNING:
            if value != value.to_integral_value():
                return self._no(i18n._("The next scan counts whole pieces"))
            self.next_qty = value
            return self._ok(i18n._("Next scan counts {count} times", count=value))
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
            return self._ask_staff(
                "set_quantity", (line, value), ANY_STAFF, i18n._("Lowering a quantity")
            )
        return self._set_qty(line, value)

    def _set_qty(self, line: int, value: Decimal) -> Outcome:
        current = self.cart.line(line)
        if current.unit == "each" and value != value.to_integral_value():
            return self._no(i18n._("{name} is sold by the piece", name=current.name))
        try:
            numbers.cart_quantity(value, current.unit)
        except ValueError as exc:
            return self._no(_sentence(exc))
        if current.amount is None and self._too_much((value - current.qty) * current.price):
            return self._no(_TOO_MUCH)
        if current.amount is not None:
            return self._no(i18n._("A priced label cannot change quantity; scan it again"))
        self.cart.update(line, qty=value)
        total = self.cart.priced().total
        self._emit("cart", line=line, total=str(total))
        return self._ok(
            i18n._(
                "{name} x {qty}: total {total}",
                name=current.name,
                qty=value,
                total=money_arg(total, self.config),
            )
        )

    def _needs_staff_to_reduce(self) -> bool:
        return self.role == "self-checkout" and self.staff is None

    def remove_line(self, line: int) -> Outcome:
        self._record({"remove": line})
        try:
            current = self.cart.line(line)
        except IndexError as exc:
            return self._no(_said(exc))
        if self.state != State.SCANNING:
            return self._no(i18n._("Lines can only be removed while scanning"))
        if self._needs_staff_to_reduce():
            return self._ask_staff("remove_line", (line,), ANY_STAFF, i18n._("Removing an item"))
        self.cart.remove(line)
        audit.record("line_removed", self._staff_code(), current.sku, "qty", current.qty, 0)
        total = self.cart.priced().total
        self._emit("cart", removed=line, total=str(total))
        if not self.cart:
            self._to(State.ATTRACT if self.role == "self-checkout" else State.SCANNING)
        return self._ok(
            i18n._(
                "Removed {name}: total {total}",
                name=current.name,
                total=money_arg(total, self.config),
            )
        )

    def _approved_remove_line(self, line: int) -> Outcome:
        current = self.cart.remove(line)
        audit.record("line_removed", self._staff_code(), current.sku, "qty", current.qty, 0)
        total = self.cart.priced().total
        self._emit("cart", removed=line, total=str(total))
        if self.state == State.HELP:
            self._to(State.SCANNING)
        return self._ok(
            i18n._(
                "Removed {name}: total {total}",
                name=current.name,
                total=money_arg(total, self.config),
            )
        )

    def _approved_set_quantity(self, line: int, value: Decimal) -> Outcome:
        return self._set_qty(line, value)

    def lookup(self, text: str) -> Outcome:
        """Find items without a barcode by name (or SKU)."""
        self._record({"lookup": text})
        if len(text.strip()) < 2:
            return self._no(i18n._("Type at least two letters"))
        items = catalog.search(text)
        self.lookup_results = [(i.sku, i.name, i.price) for i in items]
        if not items:
            return self._no(i18n._("Nothing matches {text!r}. Call staff for help.", text=text))
        return self._ok(
            i18n._("{count} item(s) match {text!r}", count=len(items), text=text),
            results=self.lookup_results,
        )

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
            return self._no(i18n._("{name} is no longer sold", name=item.name))
        if value <= 0:
            return self._no(i18n._("Quantity must be above zero"))
        if item.unit == "each" and value != value.to_integral_value():
            return self._no(i18n._("{name} is sold by the piece", name=item.name))
        return self._add_line(item, value)

    def _within_limit(self, new_total_pct: Decimal) -> bool:
        limit = self.config.checkout.cashier_discount_pct
        return self.staff is not None and (
            self.staff.role == "supervisor"
            or (self.staff.role == "cashier" and new_total_pct <= limit)
        )

    def override_price(self, line: int, price: object) -> Outcome:
        self._record({"override": {"line": line, "price": str(price)}})
        try:
            value = self._typed_money(price, N_("price"))
            current = self.cart.line(line)
        except (ValueError, IndexError) as exc:
            return self._no(_sentence(exc))
        if current.amount is not None:
            return self._no(i18n._("A priced label's price cannot be overridden"))
        pct = (
            (current.list_price - value) / current.list_price * 100 if current.list_price else ZERO
        )
        if not self._within_limit(pct):
            return self._ask_staff(
                "override_price", (line, value), SUPERVISOR, i18n._("A price override")
            )
        return self._approved_override_price(line, value)

    def _approved_override_price(self, line: int, value: Decimal) -> Outcome:
        before = self.cart.line(line)
        if self._too_much((value - before.price) * before.qty):
            return self._no(_TOO_MUCH)
        current = self.cart.update(line, price=value)
        total = self.cart.priced().total
        self._emit("cart", line=line, total=str(total))
        return self._ok(
            i18n._(
                "{name} now {price} each", name=current.name, price=money_arg(value, self.config)
            )
        )

    def discount(self, line: int | None = None, percent: object = None, amount: object = None):
        """A line discount (amount or percent), or a percent off every line."""
        self._record({"discount": {"line": line, "percent": percent, "amount": amount}})
        if not self.cart:
            return self._no(i18n._("Nothing to discount"))
        try:
            pct = (
                _decimal(percent, N_("percent"), numbers.MAX_PERCENT)
                if percent is not None
                else None
            )
            amt = self._typed_money(amount, N_("amount")) if amount is not None else None
            targets = [line] if line is not None else list(range(1, len(self.cart.lines) + 1))
            for number in targets:
                self.cart.line(number)
        except (ValueError, IndexError) as exc:
            return self._no(_said(exc))
        if (pct is None) == (amt is None):
            return self._no(i18n._("Give a percent or an amount"))
        if amt is not None and line is None:
            return self._no(i18n._("An amount discount applies to one line"))
        plans = []
        priced = self.cart.priced().lines
        for number in targets:
            gross = priced[number - 1].gross
            value = amt if amt is not None else (gross * pct / 100)
            value = value.quantize(self.ledger.policy.unit, ROUND_HALF_UP)
            if value < 0 or value > gross:
                return self._no(i18n._("A discount must be between zero and the line amount"))
            share = pct if pct is not None else (value / gross * 100 if gross else ZERO)
            plans.append((number, value, share))
        worst = max(share for _, _, share in plans)
        if not self._within_limit(worst):
            return self._ask_staff(
                "apply_discounts", (tuple(plans),), SUPERVISOR, i18n._("A discount")
            )
        return self._approved_apply_discounts(tuple(plans))

    def _approved_apply_discounts(self, plans) -> Outcome:
        for number, value, _ in plans:
            self.cart.update(number, discount=value)
        total = self.cart.priced().total
        audit.record(
            "discount", self._staff_code(), None, None, None, str(sum(v for _, v, _ in plans))
        )
        self._emit("cart", total=str(total))
        return self._ok(
            i18n._("Discount given: total {total}", total=money_arg(total, self.config))
        )

    def cancel(self) -> Outcome:
        """Abandon the cart: recorded for audit, never posted."""
        self._record({"cancel": True})
        if self.terminal_job is not None:
            return self._no(i18n._("The card terminal is still working: cancel the payment first"))
        if self.state == State.PAYING and self.payment.tenders:
            return self._no(i18n._("Cancel the payment first"))
        if not self.cart and self.state not in (State.HELP,):
            return self._no(i18n._("Nothing to cancel"))
        self._abandon("cancelled")
        return self._ok(i18n._("Sale cancelled"))

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


def _qty(line: CartLine) -> i18n.Weight | Decimal:
    """A line's quantity for a message: "0.532 kg" (German "0,532 kg") or pieces."""
    return i18n.Weight(line.qty, f"{line.qty} kg") if line.unit == "kg" else line.qty
