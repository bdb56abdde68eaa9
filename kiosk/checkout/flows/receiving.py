"""Receiving a delivery: scan or type what came in, post it against its reference."""

from __future__ import annotations

from dataclasses import dataclass, field

from kiosk import numbers
from kiosk.checkout.core import ANY_STAFF, Flow, Outcome, State, _sentence
from kiosk.ledger import catalog, stock
from kiosk.ledger.barcodes import Parsed
from kiosk.ledger.core import LedgerError


@dataclass
class ReceivingFlow:
    reference: str | None = None
    received: dict[str, int] = field(default_factory=dict)


FLOW = Flow(State.RECEIVING, "receiving", "_receive_scan", "received", lambda f: dict(f.received))


class ReceivingMixin:
    receiving: ReceivingFlow | None

    def start_receiving(self, reference: str | None = None) -> Outcome:
        self._record({"start": "receiving", "reference": reference})
        refused = self._open_flow(State.RECEIVING, ReceivingFlow(reference), ANY_STAFF)
        return refused or self._ok("Receiving: scan every item or case delivered")

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
        qty = self._typed_stock(sku, qty, "quantity received", 1)
        if isinstance(qty, Outcome):
            return qty
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
        return self._flow_posted(
            posted, f"Received {posted.number}: {sum(flow.received.values())} unit(s)"
        )
