"""What the checkout needs from hardware, as small interfaces (Protocols).

The drivers implement them over python-escpos and gpiozero; `MemoryPrinter` and
`MemoryDrawer` keep what they were asked to do, for the headless demo and replay.
Drivers sit below the checkout and never import the ledger.
"""

from __future__ import annotations

from typing import Protocol

from kiosk.documents import KitLabel, Receipt, TextReport


class PrinterError(Exception):
    """The printer could not print (paper out, offline, ...); `status` says which."""

    def __init__(self, message: str, status: str = "offline"):
        super().__init__(message)
        self.status = status


class DrawerError(Exception):
    """The cash drawer could not be opened."""


class ScannerError(Exception):
    """No matching scanner, or no permission to read it; the message says which."""


class ReceiptPrinter(Protocol):
    def print_receipt(self, receipt: Receipt) -> None: ...

    def print_kit_label(self, label: KitLabel) -> None: ...

    def print_report(self, report: TextReport) -> None: ...


class CashDrawer(Protocol):
    def open(self) -> None: ...


class MemoryPrinter:
    """Keeps documents instead of printing them; `fail_with` simulates a fault."""

    def __init__(self) -> None:
        self.printed: list[Receipt | KitLabel | TextReport] = []
        self.fail_with: PrinterError | None = None

    def _out(self, document) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.printed.append(document)

    def print_receipt(self, receipt: Receipt) -> None:
        self._out(receipt)

    def print_kit_label(self, label: KitLabel) -> None:
        self._out(label)

    def print_report(self, report: TextReport) -> None:
        self._out(report)


class MemoryDrawer:
    def __init__(self) -> None:
        self.opened = 0
        self.fail_with: DrawerError | None = None

    def open(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.opened += 1
