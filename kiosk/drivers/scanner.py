"""Barcode scanners: USB keyboard-wedge scanners through evdev, serial ones through pyserial.

Keyboard-wedge decoding goes through libxkbcommon (the `xkbcommon` binding), so a
scanner set to any layout and variant xkb-data has ("de", "ch(fr)", "us(dvorak)",
kiosk/drivers/keymaps.py) types what it means: hand-made key tables are the classic
field failure. Shift, caps lock and Ctrl (FNC1 arrives as
Ctrl+] = ASCII 29) are tracked by xkb's own state. The device is grabbed
exclusively, so scans never leak into the UI as keystrokes; an unplugged scanner is
found again within two seconds; read errors are logged and never stop the app.
AIM symbology identifiers (]C1, ]E0 ...) pass through to the barcode parser.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from evdev import InputEvent, ecodes
from xkbcommon import xkb

from kiosk.config import ScannerConfig
from kiosk.drivers import keymaps
from kiosk.drivers.base import ScannerError

log = logging.getLogger(__name__)
TERMINATOR_KEYS = {
    "enter": {ecodes.KEY_ENTER, ecodes.KEY_KPENTER},
    "tab": {ecodes.KEY_TAB},
    "none": set(),
}
GS = "\x1d"
RESCAN_S = 0.5  # how often a missing scanner is looked for (found within 2 s)


def _clean(text: str, config: ScannerConfig) -> str:
    if config.fnc1:
        text = text.replace(config.fnc1, GS)
    if config.prefix and text.startswith(config.prefix):
        text = text[len(config.prefix) :]
    if config.suffix and text.endswith(config.suffix):
        text = text[: -len(config.suffix)]
    return text.strip("\r\n")


def compile_keymap(text: str) -> xkb.Keymap:
    """The xkb keymap of a configured layout ("de", "de(nodeadkeys)"), checked against
    xkb-data first (libxkbcommon's own failure says only "returned NULL")."""
    try:
        layout, variant = keymaps.check(text)
        return xkb.Context().keymap_new_from_names(layout=layout, variant=variant or None)
    except keymaps.KeymapError as exc:
        raise ScannerError(f"[scanner] keymap: {exc}") from None
    except xkb.XKBError as exc:  # listed in xkb-data, yet its symbols do not compile
        raise ScannerError(
            f"[scanner] keymap {text!r}: libxkbcommon cannot build it: {exc}"
        ) from None


class KeyDecoder:
    """evdev key events -> scanned strings, in the scanner's keyboard layout."""

    def __init__(self, config: ScannerConfig):
        self.config = config
        self.state = compile_keymap(config.keymap).state_new()
        self.terminators = TERMINATOR_KEYS[config.terminator]
        self.buffer: list[str] = []
        self.last_key = 0.0

    def feed(self, event: InputEvent) -> str | None:
        """One event in; a finished scan out (or None)."""
        if event.type != ecodes.EV_KEY:
            return None
        keycode = event.code + 8  # evdev -> xkb keycode
        if event.value == 0:  # release: only modifiers care
            self.state.update_key(keycode, xkb.XKB_KEY_UP)
            return None
        if event.value not in (1, 2):
            return None
        self.last_key = event.timestamp()
        if event.code in self.terminators:
            return self._finish()
        text = self.state.key_get_string(keycode)  # look up first, then update the state
        if event.value == 1:
            self.state.update_key(keycode, xkb.XKB_KEY_DOWN)
        if text and (text.isprintable() or text == GS):
            self.buffer.append(text)
        return None

    def idle(self, now: float) -> str | None:
        """Terminator "none": a pause longer than timeout_ms ends the scan."""
        if self.buffer and now - self.last_key >= self.config.timeout_ms / 1000:
            return self._finish()
        return None

    def _finish(self) -> str | None:
        text = _clean("".join(self.buffer), self.config)
        self.buffer.clear()
        return text or None  # an Enter before the data (some scanners' preamble)

    def feed_all(self, events: Iterable[InputEvent]) -> list[str]:
        scans = []
        for event in events:
            done = self.feed(event)
            if done:
                scans.append(done)
        if self.config.terminator == "none" and self.buffer:
            final = self._finish()
            if final:
                scans.append(final)
        return scans


# ---------------------------------------------------------------- finding devices


@dataclass(frozen=True)
class DeviceInfo:
    path: str
    name: str
    vendor: int
    product: int
    has_keys: bool

    @property
    def ident(self) -> str:
        return f"{self.vendor:04x}:{self.product:04x}"


def matches(info: DeviceInfo, match: str) -> bool:
    """A config match: a /dev/input/by-id path, vendor:product in hex, or a name part."""
    if not match or not info.has_keys:
        return False
    if match.startswith("/"):
        try:
            return os.path.realpath(match) == os.path.realpath(info.path)
        except OSError:
            return False
    if len(match) == 9 and match[4] == ":":
        return match.lower() == info.ident
    return match.lower() in info.name.lower()


def list_devices() -> list[DeviceInfo]:
    """Every input device evdev can open; unreadable ones are reported, not hidden."""
    from evdev import InputDevice, list_devices  # noqa: PLC0415 - needs /dev/input

    found = []
    for path in list_devices():
        try:
            device = InputDevice(path)
        except PermissionError:
            raise ScannerError(
                f"{path}: permission denied; add the kiosk user to the 'input' group"
            ) from None
        except OSError as exc:
            log.warning("%s: %s", path, exc)
            continue
        keys = ecodes.EV_KEY in device.capabilities()
        found.append(DeviceInfo(path, device.name, device.info.vendor, device.info.product, keys))
        device.close()
    return found


def input_devices_visible() -> bool:
    return Path("/dev/input").is_dir()


class ReaderThread:
    """Runs `run()` in a daemon thread until stop()."""

    name = "scanner"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self):
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2)

    def run(self) -> None:  # pragma: no cover - every reader defines it
        raise NotImplementedError


class EvdevScanner(ReaderThread):
    """Reads every matching scanner in a thread; calls on_scan(text) per scan."""

    def __init__(self, config: ScannerConfig, on_scan: Callable[[str], None]):
        if not config.match:
            raise ScannerError('set [scanner] match to a name, "vendor:product" or a path')
        super().__init__()
        self.config = config
        self.on_scan = on_scan
        self.connected: str | None = None

    def run(self) -> None:
        from evdev import InputDevice  # noqa: PLC0415

        while not self._stop.is_set():
            try:
                found = [d for d in list_devices() if matches(d, self.config.match)]
            except ScannerError as exc:
                log.error("%s", exc)
                found = []
            if not found:
                self.connected = None
                self._stop.wait(RESCAN_S)  # hot-plug: look again shortly
                continue
            device = InputDevice(found[0].path)
            try:
                device.grab()  # scans must never reach the UI as keystrokes
                self.connected = device.path
                log.info("scanner %s (%s) connected", device.name, device.path)
                self._read(device)
            except OSError as exc:  # unplugged, or another grab
                log.warning("scanner %s: %s", device.path, exc)
            finally:
                self.connected = None
                with contextlib.suppress(OSError):
                    device.ungrab()
                device.close()

    def _read(self, device) -> None:
        import select  # noqa: PLC0415

        decoder = KeyDecoder(self.config)
        while not self._stop.is_set():
            ready, _, _ = select.select([device.fd], [], [], 0.02)
            if ready:
                for event in device.read():
                    self._deliver(decoder.feed(event))
            elif self.config.terminator == "none":
                self._deliver(decoder.idle(time.time()))

    def _deliver(self, scan: str | None) -> None:
        if scan:
            try:
                self.on_scan(scan)
            except Exception:  # noqa: BLE001 - a bad handler must not stop the scanner
                log.exception("scan handler failed")


class SerialScanner(ReaderThread):
    """A serial (or USB CDC) scanner through pyserial: the same scans, from bytes."""

    name = "serial-scanner"

    def __init__(self, config: ScannerConfig, on_scan: Callable[[str], None], port=None):
        import serial  # noqa: PLC0415 - pyserial for serial scanners only

        super().__init__()
        self.config = config
        self.on_scan = on_scan
        self.port = port or serial.serial_for_url(
            config.port, baudrate=config.baudrate, timeout=config.timeout_ms / 1000
        )
        self.buffer = bytearray()

    def stop(self) -> None:
        super().stop()
        self.port.close()

    def run(self) -> None:
        import serial  # noqa: PLC0415

        while not self._stop.is_set():
            try:
                chunk = self.port.read(256)
            except (serial.SerialException, OSError) as exc:
                log.warning("serial scanner: %s", exc)
                self._stop.wait(RESCAN_S)
                continue
            for scan in self.feed(chunk):
                self.on_scan(scan)

    def feed(self, chunk: bytes) -> list[str]:
        """Bytes in; finished scans out. A timeout with no terminator ends a scan too."""
        scans = []
        ends = {"enter": b"\r\n", "tab": b"\t", "none": b""}[self.config.terminator]
        if not chunk and self.buffer:  # a read timed out: the pause ends the scan
            scans.append(self.buffer.decode("utf-8", "replace"))
            self.buffer.clear()
        for byte in chunk:
            if byte in ends:
                if self.buffer:
                    scans.append(self.buffer.decode("utf-8", "replace"))
                    self.buffer.clear()
            else:
                self.buffer.append(byte)
        return [cleaned for cleaned in (_clean(s, self.config) for s in scans) if cleaned]


class SimulatedScanner:
    """The demo's scanner: text typed or tapped on screen arrives like a scan."""

    def __init__(self, on_scan: Callable[[str], None]):
        self.on_scan = on_scan

    def type(self, text: str) -> None:
        if text.strip():
            self.on_scan(text.strip())

    def start(self) -> SimulatedScanner:
        return self

    def stop(self) -> None:
        pass
