"""Kit assembly: choose a kit, build some from their components, print their labels."""

from __future__ import annotations

from dataclasses import dataclass

from kiosk import i18n, numbers
from kiosk.checkout.core import ANY_STAFF, Flow, Outcome, State, _sentence
from kiosk.drivers.base import PrinterError
from kiosk.i18n import N_
from kiosk.ledger import catalog, receipts, stock
from kiosk.ledger.barcodes import Parsed
from kiosk.ledger.core import LedgerError


@dataclass
class KitFlow:
    sku: str
    name: str
    components: list[tuple[str, str, int, int]]  # sku, name, per kit, on hand

    def shortfall(self, kits: int) -> list[i18n.Message]:
        return [
            i18n._("{name}: need {need}, have {have}", name=name, need=per * kits, have=have)
            for _, name, per, have in self.components
            if per * kits > have
        ]


FLOW = Flow(State.KIT, "kit", "_kit_scan", "kit", lambda f: {"sku": f.sku, "name": f.name})


class KitsMixin:
    kit: KitFlow | None

    def _kit_scan(self, parsed: Parsed) -> Outcome:
        return self._no(i18n._("Scan kits from the staff menu: choose kit assembly first"))

    def start_kit(self, sku: str) -> Outcome:
        self._record({"start": "kit", "sku": sku})
        refusal = self._need(ANY_STAFF) or self._staff_state()
        if refusal:
            return self._no(refusal)
        try:
            kit = catalog.get_item(sku)
            if not kit.kit:
                raise LedgerError(i18n._("{sku} is not a kit", sku=sku))
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
        return self._ok(
            i18n._(
                "{name} (BOM v{version}): {parts}",
                name=kit.name,
                version=str(bom.version),
                parts=parts,
            )
        )

    def build_kit(self, qty: int = 1, lot: str | None = None, force: bool = False) -> Outcome:
        self._record({"build": {"qty": qty, "lot": lot, "force": force}})
        flow = self.kit
        if self.state != State.KIT or flow is None:
            return self._no(i18n._("Choose a kit first"))
        try:
            qty = numbers.whole(qty, N_("kits to build"), minimum=1, maximum=numbers.MAX_PIECES)
        except ValueError as exc:
            return self._no(_sentence(exc))
        short = flow.shortfall(qty)
        if short and not (force and self.staff and self.staff.role == "supervisor"):
            return self._no(
                i18n._("Not enough components: {missing}", missing=i18n.Joined(tuple(short), "; "))
            )
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
                self._alert(
                    i18n._(
                        "Printer: {error}. Kit labels for {number} are queued",
                        error=exc,
                        number=posted.number,
                    )
                )
                break
            receipts.mark_printed(job)
            printed += 1
        self.kit = None
        self._to(State.STAFF_MENU)
        return self._ok(
            i18n._(
                "Built {qty} x {name} ({number}); {printed} label(s) printed",
                qty=qty,
                name=flow.name,
                number=posted.number,
                printed=printed,
            )
        )
