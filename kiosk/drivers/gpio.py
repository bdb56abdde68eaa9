"""The Pi's 40-pin header as a gpiozero pin factory, its gpiochip found by what drives it.

gpiozero's lgpio factory guesses the header's chip: gpiochip0, or gpiochip4 on a Pi 5.
That matches Raspberry Pi OS's kernel. On Debian's kernel (the image's) the numbers
follow probe order instead: on a Pi 5 the header hangs off RP1, behind PCIe, and its
chip comes after the SoC's own GPIO banks. So the chip is looked up by the device-tree
`compatible` of the controller behind it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from gpiozero import Device

# The controllers that drive the 40-pin header: the Pi 5's RP1, the Pi 4 family's
# BCM2711, and the BCM2835 pin block of the Pi 3 and Zero 2 W.
HEADER_CONTROLLERS = frozenset({"raspberrypi,rp1-gpio", "brcm,bcm2711-gpio", "brcm,bcm2835-gpio"})
GPIO_BUS = Path("/sys/bus/gpio/devices")


def _compatibles(chip: Path) -> set[str]:
    """The chip's device-tree compatible strings, from its own node or its parent's."""
    for node in (chip / "of_node", chip.resolve().parent / "of_node"):
        try:
            raw = (node / "compatible").read_bytes()
        except OSError:
            continue
        return {part.decode(errors="replace") for part in raw.split(b"\0") if part}
    return set()


def header_chip(bus: Path | None = None) -> int | None:
    """The gpiochip number of the 40-pin header, or None where there is none (not a Pi)."""
    found = (bus or GPIO_BUS).glob("gpiochip*")
    chips = {int(p.name[8:]): p for p in found if p.name[8:].isdigit()}
    for number in sorted(chips):
        if _compatibles(chips[number]) & HEADER_CONTROLLERS:
            return number
    return None


def header_pin_factory(bus: Path | None = None):
    """An lgpio pin factory on the header's chip, or None to leave gpiozero its own choice.

    None when a factory is already chosen (GPIOZERO_PIN_FACTORY, or a mock set by a test
    or `kiosk hw drawer --mock`), when there is no Pi header here, or when lgpio is not
    installed (gpiozero then falls back and its error says so). A chip that will not
    open (permissions, say) is an OSError naming it.
    """
    if os.environ.get("GPIOZERO_PIN_FACTORY") or Device.pin_factory is not None:
        return None
    chip = header_chip(bus)
    if chip is None:
        return None
    try:
        factory_class = lgpio_factory_class()
    except ImportError:
        return None
    try:
        return factory_class(chip=chip)
    except Exception as exc:  # lgpio.error is a bare Exception subclass
        raise OSError(f"gpiochip{chip}: {exc}") from exc


def lgpio_factory_class():
    """gpiozero's LGPIOFactory, imported so that lgpio can start.

    Importing lgpio makes a named pipe, `.lgd-nfyN`, in the current folder for its
    callback thread and fails where that folder is read-only: on the image that is
    anywhere on the root, where a technician runs `kiosk hw drawer`. kiosk.service
    runs in the writable /var/lib/kiosk; elsewhere the import happens from the
    temporary folder (a tmpfs on the image) and the pipe stays there.
    """
    here = os.getcwd()
    move = "lgpio" not in sys.modules and not os.access(here, os.W_OK)
    if move:
        os.chdir(tempfile.gettempdir())
    try:
        from gpiozero.pins.lgpio import LGPIOFactory  # noqa: PLC0415 (needs lgpio: a Pi only)
    finally:
        if move:
            os.chdir(here)
    return LGPIOFactory
