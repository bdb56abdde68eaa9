"""Receipt and kit-label printing through python-escpos.

`EscposPrinter` implements the ReceiptPrinter port over any python-escpos
connection (USB, serial, network, file, or its Dummy in tests). Faults become
`PrinterError` with a status the checkout and the shop controller understand
(ok, paper_out, offline); a printer fault never undoes a sale.
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import TYPE_CHECKING

from kiosk import escpos_lib, i18n
from kiosk.config import PrinterConfig
from kiosk.documents import KitLabel, Receipt, TextReport
from kiosk.drivers.base import PrinterError
from kiosk.drivers.layout import (
    Barcode,
    Cut,
    Feed,
    Init,
    Logo,
    Op,
    Paper,
    Qr,
    Text,
    as_paper,
    bar_height_dots,
    barcode_plan,
    kit_label_ops,
    paper_for,
    paper_from_config,
    receipt_ops,
)
from kiosk.drivers.layout import report_ops as text_report_ops
from kiosk.drivers.preview import barcode_image, fit_width, logo_image, qr_image
from kiosk.i18n import N_

if TYPE_CHECKING:
    from escpos.escpos import Escpos

log = logging.getLogger(__name__)
# A fault's words (PrinterError's message is a kiosk.i18n Message: str() gives the English
# for logs; the screen renders it in its reader's language).
PRINTER_FAULTS = {"paper_out": N_("paper out"), "offline": N_("offline")}


def connect(config: PrinterConfig) -> Escpos | None:
    """The python-escpos connection the config describes, with the printer's own
    capability profile (opened lazily by escpos)."""
    if config.kind == "none":
        return None
    # python-escpos loads every printer's profile when imported: only here.
    escpos_printer = escpos_lib.printers()

    profile = config.profile
    if config.kind == "usb":
        vendor, product = (int(part, 16) for part in config.usb.split(":"))
        return escpos_printer.Usb(vendor, product, profile=profile)
    if config.kind == "serial":
        return escpos_printer.Serial(
            devfile=config.device, baudrate=config.baudrate, profile=profile
        )
    if config.kind == "network":
        return escpos_printer.Network(config.host, config.port, timeout=5, profile=profile)
    return escpos_printer.File(devfile=config.device, profile=profile)


def profile_name(device: Escpos) -> str:
    """The capability profile a python-escpos connection was made with."""
    data = device.profile.profile_data
    for name, profile in escpos_lib.capabilities()["profiles"].items():
        if profile is data:
            return name
    return "default"


def _image(device: Escpos, image, paper: Paper) -> None:
    """A bitmap as wide as the paper (centred by its own white margins, which every
    printer honours, unlike ESC a for images), in the profile's image command."""
    image = fit_width(image, paper)
    if paper.image_impl is None:
        return
    if paper.dot_matrix:  # 9-pin heads: 8-dot columns, double density across
        device.image(image, impl="bitImageColumn", high_density_vertical=False)
    else:
        device.image(image, impl=paper.image_impl)


def _barcode(device: Escpos, op: Barcode, paper: Paper) -> None:
    plan = barcode_plan(op, paper)
    height = bar_height_dots(paper)
    if plan.method == "hw":
        device.set(align="center", normal_textsize=True)
        if op.kind == "EAN13":
            device.barcode(
                op.data[:12], "EAN13", height=height, width=plan.module, function_type="A"
            )
        else:
            device.barcode(
                "{B" + op.data, "CODE128", height=height, width=plan.module, function_type="B"
            )
        device.set(align="left")
    elif plan.method == "text":
        device.set(align="center", normal_textsize=True)
        device.textln(op.data)
    else:
        _image(device, barcode_image(op, paper), paper)


def render(device: Escpos, ops: list[Op], paper: Paper | int | None = None) -> None:
    """Send layout operations as ESC/POS commands. python-escpos prints notes on
    stdout (which renderer it used); they are kept out of the command line's output."""
    paper = as_paper(paper)
    with contextlib.redirect_stdout(io.StringIO()):
        for op in ops:
            _render_op(device, op, paper)
        device.set(align="left", bold=False, normal_textsize=True)


def _render_op(device: Escpos, op: Op, paper: Paper) -> None:
    if isinstance(op, Init):
        device.hw("INIT")  # ESC @: whatever the printer was left in, start clean
        device.magic.encoding = None  # the reset forgot the code page: select it again
        device.magic.disabled = False
        if op.page is not None:
            # The profile's own number for the page the layout chose (python-escpos
            # would take the last of several numbers listed for one page).
            device.magic.encoder.codepages[op.page.name] = op.page.number
            device.magic.force_encoding(op.page.name)
    elif isinstance(op, Text):
        device.set(
            align=op.align,
            bold=op.bold,
            double_height=op.double,
            double_width=op.double,
            normal_textsize=not op.double,
        )
        device.textln(op.text)
    elif isinstance(op, Barcode):
        _barcode(device, op, paper)
    elif isinstance(op, Logo):
        _image(device, logo_image(op, paper), paper)
    elif isinstance(op, Qr):
        _image(device, qr_image(op, paper), paper)
    elif isinstance(op, Feed):
        device.ln(op.lines)
    elif isinstance(op, Cut):
        device.cut()


class EscposPrinter:
    """The ReceiptPrinter port over python-escpos."""

    def __init__(self, device: Escpos, paper: Paper | int | None = None, reads_status=True):
        escpos_printer = escpos_lib.printers()
        self.device = device
        if not isinstance(paper, Paper):  # paper width in mm, on the device's own profile
            paper = paper_for(profile_name(device), paper)
        self.paper = paper
        # Dummy and File connections cannot answer a status query.
        self.reads_status = reads_status and not isinstance(
            device, escpos_printer.Dummy | escpos_printer.File
        )
        self.last_status = "ok"

    @classmethod
    def from_config(cls, config: PrinterConfig) -> EscposPrinter | None:
        device = connect(config)
        return None if device is None else cls(device, paper_from_config(config))

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
            raise PrinterError(i18n._(PRINTER_FAULTS[state]), state)
        try:
            render(self.device, ops, self.paper)
        except Exception as exc:  # noqa: BLE001 - USB, serial and socket errors differ
            self.last_status = "offline"
            raise PrinterError(
                i18n._("printer failed: {error}", error=str(exc)), "offline"
            ) from exc
        self.last_status = "ok"

    def print_receipt(self, receipt: Receipt) -> None:
        self._print(receipt_ops(receipt, self.paper))

    def print_kit_label(self, label: KitLabel) -> None:
        self._print(kit_label_ops(label, self.paper))

    def print_report(self, report: TextReport) -> None:
        self._print(text_report_ops(report, self.paper))

    def kick_drawer(self) -> None:
        """A cash drawer wired to the printer's drawer port (pin 2)."""
        try:
            self.device.cashdraw(2)
        except Exception as exc:  # noqa: BLE001
            raise PrinterError(
                i18n._("drawer kick failed: {error}", error=str(exc)), "offline"
            ) from exc
