"""Receiving a delivery: scan what came in (a case receives its whole pack), type a
line's quantity on the pad, post it against its reference."""

from __future__ import annotations

from dataclasses import dataclass, field

from kiosk import numbers
from kiosk.checkout.core import ANY_STAFF, Flow, Outcome, State, _sentence
from kiosk.checkout.flows.stock_lines import StockLines, StockLinesMixin
from kiosk.i18n import N_, _
from kiosk.ledger import stock
from kiosk.ledger.barcodes import Parsed
from kiosk.ledger.core import LedgerError


@dataclass
class ReceivingFlow:
    reference: str | None = None
    lines: StockLines = field(default_factory=StockLines)

    @property
    def received(self) -> dict[str, int]:
        """Base units received per SKU (the lines' own dict)."""
        return self.lines.qty


FLOW = Flow(State.RECEIVING, "receiving", "_receive_scan", "received", lambda f: dict(f.received))


class ReceivingMixin(StockLinesMixin):
    receiving: ReceivingFlow | None

    def start_receiving(self, reference: str | None = None) -> Outcome:
        self._record({"start": "receiving", "reference": reference})
        refused = self._open_flow(State.RECEIVING, ReceivingFlow(reference), ANY_STAFF)
        return refused or self._ok(_("Receiving: scan every item or case delivered"))

    def _receive_scan(self, parsed: Parsed) -> Outcome:
        return self._stock_scan(parsed)

    def receive_item(self, sku: str, qty: int) -> Outcome:
        """Base units (pieces, or grams) added to a line: replay and scripts."""
        self._record({"receive_item": {"sku": sku, "qty": qty}})
        if self.state != State.RECEIVING or self.receiving is None:
            return self._no(_("Start receiving first"))
        qty = self._typed_stock(sku, qty, N_("quantity received"), 1)
        if isinstance(qty, Outcome):
            return qty
        lines = self.receiving.lines
        if lines.full(sku):
            return self._no(self._full_text("receive"))
        if lines.qty.get(sku, 0) + qty > numbers.MAX_STOCK_QTY:
            return self._no(
                _(
                    "At most {n} of one item per delivery",
                    n=str(numbers.MAX_STOCK_QTY),
                )
            )
        lines.know(self._item(sku))
        lines.add(sku, qty)
        return self._ok(_("{sku}: {qty} received", sku=sku, qty=str(lines.qty[sku])))

    def finish_receiving(self) -> Outcome:
        self._record({"finish": "receiving"})
        flow = self.receiving
        if self.state != State.RECEIVING or flow is None or not flow.received:
            return self._no(_("Nothing received yet"))
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
            posted,
            _(
                "Received {number}: {n} unit(s)",
                number=str(posted.number),
                n=str(sum(flow.received.values())),
            ),
        )
