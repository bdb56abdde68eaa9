"""Stock counts: scan what is on the shelf (a case counts its whole pack), type a
line's quantity on the pad, post the count. Unless the shop counts blind
(`[checkout] blind_counts`), each line shows what the ledger expected and the
difference the posting will make."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from kiosk.checkout.core import ANY_STAFF, Flow, Outcome, State, _sentence
from kiosk.checkout.flows.stock_lines import StockLines, StockLinesMixin
from kiosk.i18n import N_, _
from kiosk.ledger import stock
from kiosk.ledger.barcodes import Parsed
from kiosk.ledger.core import LedgerError


@dataclass
class CountFlow:
    lines: StockLines = field(default_factory=StockLines)
    moments: dict[str, datetime] = field(default_factory=dict)  # when each SKU was counted
    expected: dict[str, int] = field(default_factory=dict)  # the ledger's, then (not blind)

    @property
    def counted(self) -> dict[str, int]:
        """Base units counted per SKU (the lines' own dict)."""
        return self.lines.qty


FLOW = Flow(State.COUNTING, "counting", "_count_scan", "counted", lambda f: dict(f.counted))


class CountingMixin(StockLinesMixin):
    counting: CountFlow | None

    def start_count(self) -> Outcome:
        self._record({"start": "count"})
        refused = self._open_flow(State.COUNTING, CountFlow(), ANY_STAFF)
        if refused:
            return refused
        if self.config.checkout.blind_counts:
            return self._ok(_("Blind count: scan every item on the shelf"))
        return self._ok(_("Count: scan every item on the shelf"))

    def _count_scan(self, parsed: Parsed) -> Outcome:
        return self._stock_scan(parsed)

    def set_count(self, sku: str, qty: int) -> Outcome:
        """A line's count in base units (pieces, or grams): replay and scripts."""
        self._record({"set_count": {"sku": sku, "qty": qty}})
        if self.state != State.COUNTING or self.counting is None:
            return self._no(_("Start a count first"))
        qty = self._typed_stock(sku, qty, N_("count"), 0)
        if isinstance(qty, Outcome):
            return qty
        lines = self.counting.lines
        if lines.full(sku):
            return self._no(self._full_text("count"))
        lines.know(self._item(sku))
        lines.set(sku, qty)
        self._line_changed("count", sku)
        return self._ok(_("{sku}: {qty} counted", sku=sku, qty=str(qty)))

    def finish_count(self) -> Outcome:
        self._record({"finish": "count"})
        flow = self.counting
        if self.state != State.COUNTING or flow is None or not flow.counted:
            return self._no(_("Nothing counted yet"))
        try:
            posted = stock.count(self.ledger, flow.counted, self._staff_code(), flow.moments)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        return self._flow_posted(
            posted,
            _(
                "Count {number} posted: {n} item(s)",
                number=str(posted.number),
                n=str(len(flow.counted)),
            ),
        )
