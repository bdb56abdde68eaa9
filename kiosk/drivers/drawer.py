"""The cash drawer: a GPIO pulse (gpiozero), a kick through the printer, or none.

A solenoid drawer opens on a short pulse; gpiozero's DigitalOutputDevice drives
the pin (active high or low) on the header's own gpiochip (see drivers.gpio), and
its `blink(n=1)` times the pulse in gpiozero's own background thread, so the UI
never waits. An optional switch (gpiozero Button) tells open from closed and warns
when the drawer is left open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kiosk.config import DrawerConfig
from kiosk.drivers.base import DrawerError


class GpioDrawer:
    def __init__(self, config: DrawerConfig, on_left_open: Callable[[float], None] | None = None):
        self.pulse_s = config.pulse_ms / 1000
        self.open_warn_s = config.open_warn_s
        self.on_left_open = on_left_open
        from gpiozero import Button, DigitalOutputDevice  # noqa: PLC0415 - GPIO drawers only
        from gpiozero.exc import GPIOZeroError  # noqa: PLC0415

        from kiosk.drivers.gpio import header_pin_factory  # noqa: PLC0415

        try:
            self._factory = header_pin_factory()
            self.output = DigitalOutputDevice(
                config.pin,
                active_high=config.active_high,
                initial_value=False,
                pin_factory=self._factory,
            )
            self.sensor = None
            if config.sensor_pin is not None:
                self.sensor = Button(
                    config.sensor_pin, pull_up=True, bounce_time=0.02, pin_factory=self._factory
                )
        except (GPIOZeroError, OSError, RuntimeError) as exc:
            raise DrawerError(f"GPIO {config.pin}: {exc}") from exc
        self._open_since: float | None = None
        self._watch: threading.Timer | None = None
        self._open_when_pressed = config.sensor_open_when_pressed
        if self.sensor is not None:
            self.sensor.when_pressed = self._changed
            self.sensor.when_released = self._changed

    def open(self) -> None:
        """One pulse of pulse_ms; returns at once."""
        from gpiozero.exc import GPIOZeroError  # noqa: PLC0415

        try:
            self.output.blink(on_time=self.pulse_s, off_time=0, n=1, background=True)
        except (GPIOZeroError, OSError, RuntimeError) as exc:
            raise DrawerError(f"drawer pulse failed: {exc}") from exc

    @property
    def is_open(self) -> bool | None:
        """None when no sensor is fitted."""
        if self.sensor is None:
            return None
        return self.sensor.is_pressed == self._open_when_pressed

    def _changed(self) -> None:
        if self.is_open:
            self._open_since = time.monotonic()
            self._watch = threading.Timer(self.open_warn_s, self._left_open)
            self._watch.daemon = True
            self._watch.start()
        else:
            self._open_since = None
            if self._watch:
                self._watch.cancel()

    def _left_open(self) -> None:
        if self._open_since is not None and self.on_left_open:
            self.on_left_open(time.monotonic() - self._open_since)

    def close(self) -> None:
        if self._watch:
            self._watch.cancel()
        self.output.close()
        if self.sensor is not None:
            self.sensor.close()
        if self._factory is not None:
            self._factory.close()


class PrinterKickDrawer:
    """A drawer wired to the receipt printer's drawer port."""

    def __init__(self, printer):
        self.printer = printer

    def open(self) -> None:
        try:
            self.printer.kick_drawer()
        except Exception as exc:  # noqa: BLE001 - the printer says why
            raise DrawerError(str(exc)) from exc


class NoDrawer:
    def open(self) -> None:
        """No drawer fitted (card-only kiosks): nothing to open."""
