"""Receipt and kit-label printing through python-escpos.

`EscposPrinter` implements the ReceiptPrinter port over any python-escpos
connection (USB, serial, network, file, or its Dummy in tests). Faults become
`PrinterError` with a status the checkout and the shop controller understand
(ok, paper_out, offline); a printer fault never undoes a sale.
"""

from __future__ import annotations

import logging

from escpos import printer as escpos_printer
from escpos.escpos import Escpos

from kiosk.config import PrinterConfig
from kiosk.documents import KitLabel, Receipt, TextReport
from kiosk.drivers.base import PrinterError
from kiosk.drivers.layout import (
    Barcode,
    Cut,
    Feed,
    Logo,
    Op,
    Qr,
    Text,
    kit_label_ops,
    module_dots,
    receipt_ops,
)
from kiosk.drivers.layout import report_ops as text_report_ops
from kiosk.drivers.preview import barcode_image, logo_image

log = logging.getLogger(__name__)


def connect(config: PrinterConfig) -> Escpos | None:
    """The python-escpos connection the config describes (opened lazily by escpos)."""
    if config.kind == "none":
        return None
    if config.kind == "usb":
        vendor, product = (int(part, 16) for part in config.usb.split(":"))
        return escpos_printer.Usb(vendor, product)
    if config.kind == "serial":
        return escpos_printer.Serial(devfile=config.device, baudrate=config.baudrate)
    if config.kind == "network":
        return escpos_printer.Network(config.host, config.port, timeout=5)
    return escpos_printer.File(devfile=config.device)


def render(device: Escpos, ops: list[Op], paper_mm: int = 80) -> None:
    """Send layout operations as ESC/POS commands."""
    for op in ops:
        if isinstance(op, Text):
            device.set(
                align=op.align,
                bold=op.bold,
                double_height=op.double,
                double_width=op.double,
                normal_textsize=not op.double,
            )
            device.textln(op.text)
        elif isinstance(op, Barcode):
            device.set(align="center", normal_textsize=True)
            dots = module_dots(op, paper_mm)
            if dots < 2:  # ESC/POS bars are 2 dots or more: too wide, so print a bitmap
                device.image(barcode_image(op, paper_mm), center=False)
            elif op.kind == "EAN13":
                device.barcode(op.data[:12], "EAN13", height=80, width=dots, function_type="A")
            else:
                device.barcode("{B" + op.data, "CODE128", height=80, width=dots, function_type="B")
        elif isinstance(op, Logo):
            device.image(logo_image(op, paper_mm), center=False)
        elif isinstance(op, Qr):
            device.qr(op.data, size=6, center=True)
        elif isinstance(op, Feed):
            device.ln(op.lines)
        elif isinstance(op, Cut):
            device.cut()
    device.set(align="left", bold=False, normal_textsize=True)


class EscposPrinter:
    """The ReceiptPrinter port over python-escpos."""

    def __init__(self, device: Escpos, paper_mm: int = 80, reads_status: bool = True):
        self.device = device
        self.paper_mm = paper_mm
        # Dummy and File connections cannot answer a status query.
        self.reads_status = reads_status and not isinstance(
            device, escpos_printer.Dummy | escpos_printer.File
        )
        self.last_status = "ok"

    @classmethod
    def from_config(cls, config: PrinterConfig) -> EscposPrinter | None:
        device = connect(config)
        return None if device is None else cls(device, config.paper_mm)

    def status(self) -> str:
        """ok, paper_low, paper_out or offline, where the printer can tell."""
        if not self.reads_status:
            return self.last_status
        try:
            if not self.device.is_online():
                self.last_status = "offline"
            else:
                paper = self.device.paper_status()  # 2 ok, 1 near end, 0 out
                self.last_status = {0: "paper_out", 1: "paper_low"}.get(paper, "ok")
        except Exception as exc:  # noqa: BLE001 - every transport fails its own way
            log.warning("printer status query failed: %s", exc)
            self.last_status = "offline"
        return self.last_status

    def _print(self, ops: list[Op]) -> None:
        state = self.status()
        if state in ("paper_out", "offline"):
            raise PrinterError(state.replace("_", " "), state)
        try:
            render(self.device, ops, self.paper_mm)
        except Exception as exc:  # noqa: BLE001 - USB, serial and socket errors differ
            self.last_status = "offline"
            raise PrinterError(f"printer failed: {exc}", "offline") from exc
        self.last_status = "ok"

    def print_receipt(self, receipt: Receipt) -> None:
        self._print(receipt_ops(receipt, self.paper_mm))

    def print_kit_label(self, label: KitLabel) -> None:
        self._print(kit_label_ops(label, self.paper_mm))

    def print_report(self, report: TextReport) -> None:
        self._print(text_report_ops(report, self.paper_mm))

    def kick_drawer(self) -> None:
        """A cash drawer wired to the printer's drawer port (pin 2)."""
        try:
            self.device.cashdraw(2)
        except Exception as exc:  # noqa: BLE001
            raise PrinterError(f"drawer kick failed: {exc}", "offline") from exc
