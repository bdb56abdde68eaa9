"""Stock counts: scan or type what is on the shelf, post the count."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from kiosk import numbers
from kiosk.checkout.core import ANY_STAFF, Flow, Outcome, State, _sentence
from kiosk.ledger import catalog, sales, stock
from kiosk.ledger.barcodes import Parsed
from kiosk.ledger.core import LedgerError

_FULL_COUNT = (
    f"A count holds at most {numbers.MAX_EVENT_LINES} items: finish it, then start another"
)


@dataclass
class CountFlow:
    counted: dict[str, int] = field(default_factory=dict)
    moments: dict[str, datetime] = field(default_factory=dict)


FLOW = Flow(State.COUNTING, "counting", "_count_scan", "counted", lambda f: dict(f.counted))


class CountingMixin:
    counting: CountFlow | None

    def start_count(self) -> Outcome:
        self._record({"start": "count"})
        refused = self._open_flow(State.COUNTING, CountFlow(), ANY_STAFF)
        return refused or self._ok("Count: scan every item on the shelf")

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
        qty = self._typed_stock(sku, qty, "count", 0)
        if isinstance(qty, Outcome):
            return qty
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
        return self._flow_posted(
            posted, f"Count {posted.number} posted: {len(flow.counted)} item(s)"
        )
