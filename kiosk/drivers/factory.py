"""Drivers from config: the real ones on a device, simulated ones for the demo.

Each driver's module (and its library: python-escpos, Pillow, gpiozero, evdev,
pyserial) is imported when a config asks for it, not by the app's start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kiosk.config import Config
from kiosk.drivers.base import DrawerError, MemoryDrawer

NO_GPIO_HINT = "no GPIO here (not a Raspberry Pi, or lgpio missing: pip install 'kiosk[pi]')"


def make_printer(config: Config, demo_folder: Path | None = None):
    if demo_folder is not None:
        from kiosk.drivers.preview import PreviewPrinter  # noqa: PLC0415

        return PreviewPrinter(demo_folder, config.printer)
    from kiosk.drivers.printer import EscposPrinter  # noqa: PLC0415

    return EscposPrinter.from_config(config.printer)


def make_drawer(config: Config, printer=None, on_left_open: Callable | None = None, demo=False):
    if demo:
        return MemoryDrawer()
    from kiosk.drivers.drawer import GpioDrawer, NoDrawer, PrinterKickDrawer  # noqa: PLC0415

    kind = config.drawer.kind
    if kind == "none":
        return NoDrawer()
    if kind == "printer":
        if printer is None:
            raise DrawerError('[drawer] kind = "printer" needs a [printer]')
        return PrinterKickDrawer(printer)
    try:
        return GpioDrawer(config.drawer, on_left_open)
    except DrawerError as exc:
        if "pin factory" in str(exc):
            raise DrawerError(f"GPIO {config.drawer.pin}: {NO_GPIO_HINT}") from exc
        raise


def make_scanner(config: Config, on_scan: Callable[[str], None], demo=False):
    from kiosk.drivers.scanner import EvdevScanner, SerialScanner, SimulatedScanner  # noqa: PLC0415

    if demo or config.scanner.kind == "none":
        return SimulatedScanner(on_scan)
    if config.scanner.kind == "serial":
        return SerialScanner(config.scanner, on_scan)
    return EvdevScanner(config.scanner, on_scan)
