"""Drivers through the real libraries and their own doubles: evdev InputEvents,
pyserial's loop://, python-escpos Dummy/File/Network, gpiozero's MockFactory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
import serial
import zxingcpp
from escpos.printer import Dummy, File, Network
from evdev import InputEvent, ecodes
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from kiosk.config import DrawerConfig, PrinterConfig, ScannerConfig, parse
from kiosk.documents import KitLabel, Receipt, ReceiptLine, TaxLine, TenderLine
from kiosk.drivers import gpio
from kiosk.drivers.base import DrawerError, PrinterError
from kiosk.drivers.drawer import GpioDrawer, PrinterKickDrawer
from kiosk.drivers.layout import kit_label_ops, receipt_ops
from kiosk.drivers.preview import PreviewPrinter, render_png
from kiosk.drivers.printer import EscposPrinter, connect
from kiosk.drivers.scanner import (
    GS,
    DeviceInfo,
    KeyDecoder,
    SerialScanner,
    matches,
)
from tests.mqtt_env import wait_until
from tests.printer_listener import PAPER_LOW, PAPER_OUT, PrinterListener

DATA = Path(__file__).parent / "data"


def recorded(name: str):
    data = json.loads((DATA / f"{name}.xkbcommon.json").read_text())  # generated
    return data, [InputEvent(*row) for row in data["events"]]


# ---------------------------------------------------------------- scanners


@pytest.mark.parametrize(
    "name", ["us_ean13", "de_layout", "fr_layout", "enter_first", "gs1_fnc1", "caps_lock"]
)
def test_recorded_scans_decode_in_their_layout(name):
    data, events = recorded(name)
    assert KeyDecoder(ScannerConfig(keymap=data["keymap"])).feed_all(events) == data["expect"]


def test_the_wrong_layout_is_the_classic_field_failure():
    _, events = recorded("de_layout")
    assert KeyDecoder(ScannerConfig(keymap="us")).feed_all(events) == [
        "SKUYZ/7",
        "RCPtill/01/000042",
    ]


def test_gs1_scan_reaches_the_parser_with_fnc1_and_identifier():
    from kiosk.ledger.barcodes import BarcodeParser

    _, events = recorded("gs1_fnc1")
    (scan,) = KeyDecoder(ScannerConfig()).feed_all(events)
    assert scan.startswith("]C1") and scan.count(GS) == 2
    parsed = BarcodeParser().parse(scan)
    assert parsed.gtin == "09501101530003" and parsed.batch == "ABC123"


def key_events(text_codes, terminator=ecodes.KEY_ENTER, start=1000.0):
    events, t = [], start
    for code in [*text_codes, terminator]:
        for value in (1, 0):
            t += 0.004
            events.append(InputEvent(int(t), int((t % 1) * 1e6), ecodes.EV_KEY, code, value))
    return events


def test_prefix_suffix_fnc1_substitute_and_tab_terminator():
    codes = [ecodes.KEY_X, ecodes.KEY_1, ecodes.KEY_2, ecodes.KEY_GRAVE, ecodes.KEY_3, ecodes.KEY_Y]
    config = ScannerConfig(terminator="tab", prefix="x", suffix="y", fnc1="`")
    scans = KeyDecoder(config).feed_all(key_events(codes, ecodes.KEY_TAB))
    assert scans == ["12" + GS + "3"]


def test_no_terminator_ends_a_scan_after_a_pause():
    decoder = KeyDecoder(ScannerConfig(terminator="none", timeout_ms=60))
    for event in key_events([ecodes.KEY_4, ecodes.KEY_2], ecodes.KEY_LEFTSHIFT, 50.0)[:4]:
        assert decoder.feed(event) is None
    assert decoder.idle(50.0 + 0.05) is None  # still typing
    assert decoder.idle(50.0 + 0.2) == "42"


def test_garbage_from_the_scanner_never_crashes():
    decoder = KeyDecoder(ScannerConfig())
    noise = [
        InputEvent(1, 0, ecodes.EV_MSC, ecodes.MSC_SCAN, 458792),
        InputEvent(1, 0, ecodes.EV_REL, ecodes.REL_X, 5),
        InputEvent(1, 0, ecodes.EV_KEY, 0x2FF, 1),  # a key no layout knows
        InputEvent(1, 0, ecodes.EV_KEY, ecodes.KEY_F5, 1),
        InputEvent(1, 0, ecodes.EV_KEY, ecodes.KEY_A, 2),  # autorepeat
        InputEvent(1, 0, ecodes.EV_KEY, ecodes.KEY_A, 7),  # an impossible value
        InputEvent(1, 0, ecodes.EV_KEY, ecodes.KEY_ENTER, 1),
    ]
    assert decoder.feed_all(noise) == ["a"]


def test_device_matching(tmp_path):
    node = tmp_path / "event7"
    node.touch()
    by_id = tmp_path / "usb-Honeywell_1900-event-kbd"
    by_id.symlink_to(node)
    scanner = DeviceInfo(str(node), "Honeywell Imaging 1900", 0x0C2E, 0x0B61, True)
    mouse = DeviceInfo("/dev/input/event3", "Logitech Mouse", 0x046D, 0xC077, False)
    assert matches(scanner, "honeywell")
    assert matches(scanner, "0c2e:0b61") and not matches(scanner, "0c2e:0b62")
    assert matches(scanner, str(by_id))
    assert not matches(mouse, "logitech")  # no keys: not a scanner
    assert not matches(scanner, "")


def test_serial_scanner_through_pyserial_loopback():
    port = serial.serial_for_url("loop://", timeout=0.05)
    got: list[str] = []
    scanner = SerialScanner(ScannerConfig(kind="serial", prefix="*"), got.append, port=port)
    scanner.start()
    port.write(b"*4006381333931\r\n]C10109501101530003\x1d10ABC\r\n")
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    scanner.stop()
    assert got == ["4006381333931", "]C10109501101530003\x1d10ABC"]
    pause = SerialScanner(ScannerConfig(kind="serial", terminator="none"), None, port=port)
    assert pause.feed(b"96385") == [] and pause.feed(b"074") == []
    assert pause.feed(b"") == ["96385074"]  # a read timeout: the pause ended the scan


# ---------------------------------------------------------------- printing


def receipt(kind="sale", reprint=False) -> Receipt:
    return Receipt(
        store="Corner Shop",
        device="till-01",
        number="till-01-000042",
        kind=kind,
        when=datetime(2026, 11, 23, 9, 30),
        currency="EUR",
        lines=(
            ReceiptLine("Highlighter, yellow", D(2), "each", D("1.49"), D("2.98"), "A"),
            ReceiptLine("Bananas", D("0.532"), "kg", D("1.99"), D("1.06"), "B", D("0.10")),
        ),
        taxes=(TaxLine("A", D("0.19"), D("2.50"), D("0.48")),),
        tenders=(TenderLine("card", D("2.00"), "AUTH1"), TenderLine("cash", D("5.00"))),
        total=D("4.04"),
        rounding=D("0.01"),
        change=D("2.95"),
        barcode="RCPtill-01-000042",
        qr="https://shop.example/r/till-01-000042",
        reprint=reprint,
    )


LABEL = KitLabel(
    "REPAIR", "Phone repair kit", "4001234000077", 3, date(2026, 11, 23), "K-7",
    (("Pry tool", 2), ("Screwdriver set", 1)),
)  # fmt: skip


def test_receipt_escpos_bytes_on_the_dummy_printer():
    dummy = Dummy()
    EscposPrinter(dummy, 80).print_receipt(receipt())
    out = dummy.output
    assert b"\x1b\x45\x01" in out and b"\x1b\x61\x01" in out  # bold, centred header
    assert b"Corner Shop\n" in out
    assert b"TOTAL EUR" in out and b"card AUTH1" in out
    code128 = b"\x1d\x6b\x49" + bytes([len("{BRCPtill-01-000042")]) + b"{BRCPtill-01-000042"
    assert code128 in out  # GS k 73: CODE128, function B, with the code-set prefix
    assert b"\x1d\x77\x02" in out  # 2 dots a module fit on 80 mm
    assert out.endswith(b"\x1d\x56\x00") or b"\x1d\x56\x00" in out[-20:]  # the cut


def test_kit_label_bytes_and_drawer_kick_on_the_dummy():
    dummy = Dummy()
    printer = EscposPrinter(dummy, 58)
    printer.print_kit_label(LABEL)
    assert b"\x1d\x6b\x02400123400007\x00" in dummy.output  # GS k 2: EAN13, 12 digits, NUL
    assert b"BOM v3" in dummy.output and b"lot K-7" in dummy.output
    dummy.clear()
    PrinterKickDrawer(printer).open()
    assert dummy.output == b"\x1b\x70\x00\x32\x32"


@pytest.mark.parametrize("paper_mm", [58, 80])
def test_png_preview_barcodes_decode_back(paper_mm):
    image = render_png(receipt_ops(receipt(), paper_mm), paper_mm)
    assert image.width == {58: 384, 80: 576}[paper_mm]
    found = {(r.format.name, r.text) for r in zxingcpp.read_barcodes(image)}
    assert ("Code128", "RCPtill-01-000042") in found
    assert ("QRCode", "https://shop.example/r/till-01-000042") in found
    label = render_png(kit_label_ops(LABEL, paper_mm), paper_mm)
    assert {(r.format.name, r.text) for r in zxingcpp.read_barcodes(label)} == {
        ("EAN13", "4001234000077")
    }


def test_logo_on_paper_and_in_the_preview(tmp_path):
    from PIL import Image, ImageDraw

    logo = tmp_path / "logo.png"
    image = Image.new("RGB", (800, 200), "white")
    ImageDraw.Draw(image).ellipse([300, 20, 500, 180], fill="black")
    image.save(logo)
    shop_receipt = Receipt(**{**receipt().__dict__, "logo": str(logo)})
    dummy = Dummy()
    EscposPrinter(dummy, 58).print_receipt(shop_receipt)
    assert dummy.output.index(b"\x1dv0") < dummy.output.index(b"Corner Shop")  # logo first
    page = render_png(receipt_ops(shop_receipt, 58), 58)
    assert page.getpixel((192, 60)) < 128 and page.width == 384


def test_preview_printer_writes_pngs_an_artifact_to_look_at(tmp_path):
    artifacts = Path(os.environ.get("KIOSK_ARTIFACTS", tmp_path))
    printer = PreviewPrinter(artifacts / "previews", 58)
    printer.print_receipt(receipt("return", reprint=True))
    printer.print_kit_label(LABEL)
    assert [p.name for p in printer.files] == [
        "receipt-till-01-000042-reprint.png",
        "kit-REPAIR-1.png",
    ]
    assert all(p.stat().st_size > 1000 for p in printer.files)


def test_file_printer_from_config(tmp_path):
    target = tmp_path / "lp0"
    device = connect(PrinterConfig(kind="file", device=str(target)))
    assert isinstance(device, File)
    printer = EscposPrinter(device, 58)
    printer.print_receipt(receipt())
    device.close()
    # 17 characters of Code 128 at 2 dots a module overflow 58 mm across: a bitmap turned
    # 90 degrees keeps 2-dot bars (never 1-dot ones a handheld scanner misses)
    assert b"\x1dv0" in target.read_bytes() and b"\x1dk" not in target.read_bytes()
    assert printer.status() == "ok"  # a file cannot report: assume ok until a write fails


def test_network_printer_status_and_paper_out():
    listener = PrinterListener()
    try:
        device = Network("127.0.0.1", listener.port, timeout=5)
        printer = EscposPrinter(device, 80)
        printer.print_receipt(receipt())
        deadline = time.monotonic() + 5
        while b"RCPtill-01-000042" not in listener.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert b"RCPtill-01-000042" in listener.received
        assert printer.status() == "ok"
        listener.paper = PAPER_LOW
        assert printer.status() == "paper_low"
        listener.paper = PAPER_OUT
        with pytest.raises(PrinterError) as info:
            printer.print_receipt(receipt())
        assert info.value.status == "paper_out"
        device.close()
    finally:
        listener.close()


def test_unreachable_network_printer_is_a_printer_error():
    from tests.mqtt_env import free_port

    printer = EscposPrinter(Network("127.0.0.1", free_port(), timeout=1), 80)
    with pytest.raises(PrinterError) as info:
        printer.print_receipt(receipt())
    assert info.value.status == "offline"


def test_checkout_prints_through_escpos(shop):
    from kiosk.checkout.session import Checkout
    from kiosk.drivers.base import MemoryDrawer

    dummy = Dummy()
    co = Checkout(shop, EscposPrinter(dummy, 80), MemoryDrawer())
    co.scan("4006381333931")
    co.tender_cash("2.00")
    assert co.choose_receipt(True).ok
    assert f"{{BRCP{co.last_posted.number}".encode() in dummy.output


# ---------------------------------------------------------------- the cash drawer


@pytest.fixture
def mock_pins():
    previous = Device.pin_factory
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = previous


def pulse(pin, before: int) -> tuple[bool, float]:
    """(level during the pulse, its length in seconds) from a pin's history, once the
    one pulse that began after `before` entries has ended (waited for, with a deadline:
    a loaded machine may start gpiozero's blink thread late). A MockPin's history entry
    holds the time the pin spent in the state before it, so the entry that ends the
    pulse holds the pulse's length."""
    wait_until(lambda: len(pin.states) >= before + 2, 10, 0.01, what="the pulse to end")
    start, end = pin.states[before], pin.states[before + 1]
    assert len(pin.states) == before + 2 and end.state is not start.state  # one pulse
    return start.state, end.timestamp


def test_gpio_pulse_length_from_the_pin_history(mock_pins):
    drawer = GpioDrawer(DrawerConfig(pin=17, pulse_ms=100))
    before = len(mock_pins.pin(17).states)
    drawer.open()
    level, length = pulse(mock_pins.pin(17), before)
    # At least the configured length (gpiozero sleeps no less; 10 % for the clock's
    # granularity). No upper bound: a busy machine may run the blink thread late.
    assert level is True and length >= 0.09
    assert mock_pins.pin(17).state is False
    drawer.close()


def test_active_low_drawer(mock_pins):
    drawer = GpioDrawer(DrawerConfig(pin=22, pulse_ms=50, active_high=False))
    assert mock_pins.pin(22).state is True  # idle high
    before = len(mock_pins.pin(22).states)
    drawer.open()
    level, length = pulse(mock_pins.pin(22), before)
    assert level is False and length >= 0.045
    assert mock_pins.pin(22).state is True
    drawer.close()


def test_drawer_sensor_reports_open_and_warns_when_left_open(mock_pins):
    warnings: list[float] = []
    drawer = GpioDrawer(
        DrawerConfig(pin=17, sensor_pin=27, sensor_open_when_pressed=False),
        on_left_open=warnings.append,
    )
    drawer.open_warn_s = 0.2
    sensor = mock_pins.pin(27)
    sensor.drive_low()  # switch closed: the drawer is shut
    assert drawer.is_open is False
    sensor.drive_high()  # switch opens: the drawer is open
    assert drawer.is_open is True
    deadline = time.monotonic() + 3
    while not warnings and time.monotonic() < deadline:
        time.sleep(0.02)
    assert warnings and warnings[0] >= 0.2
    sensor.drive_low()
    assert drawer.is_open is False
    drawer.close()


def gpio_bus(tmp_path: Path, chips: dict[int, str], on_parent=False) -> Path:
    """A /sys/bus/gpio/devices like the kernel's: each gpiochipN links to its device,
    whose device-tree node (or its parent's, on_parent) names the controller."""
    bus = tmp_path / "bus"
    bus.mkdir(parents=True)
    for number, compatible in chips.items():
        controller = tmp_path / "devices" / f"{number:x}.gpio"
        device = controller / f"gpiochip{number}"
        node = (controller if on_parent else device) / "of_node"
        node.mkdir(parents=True)
        (node / "compatible").write_bytes(compatible.encode() + b"\0")
        (bus / f"gpiochip{number}").symlink_to(device)
    return bus


# A Pi 5 on Debian's kernel: the SoC's own brcmstb banks come first (gpiochip4 among
# them, where gpiozero would look), the header's RP1 after them.
PI5_DEBIAN = {**dict.fromkeys(range(5), "brcm,brcmstb-gpio"), 10: "raspberrypi,rp1-gpio"}
PI4 = {0: "brcm,bcm2711-gpio", 1: "raspberrypi,firmware-gpio"}


def test_header_chip_found_by_its_controller_not_its_number(tmp_path):
    assert gpio.header_chip(gpio_bus(tmp_path / "pi5", PI5_DEBIAN)) == 10
    assert gpio.header_chip(gpio_bus(tmp_path / "pi4", PI4, on_parent=True)) == 0
    zero2 = {2: "raspberrypi,firmware-gpio", 11: "brcm,bcm2835-gpio"}  # 11 sorts after 2
    assert gpio.header_chip(gpio_bus(tmp_path / "zero2", zero2)) == 11
    assert gpio.header_chip(gpio_bus(tmp_path / "qemu", {0: "arm,pl061"})) is None  # not a Pi
    assert gpio.header_chip(tmp_path / "no-gpio-at-all") is None


def test_header_pin_factory_opens_that_chip_with_lgpio(tmp_path, monkeypatch):
    """On a Pi the drawer's pins come from lgpio on the header's chip; here the chip is
    named but /dev has no such device, so real lgpio fails and the error says which."""
    bus = gpio_bus(tmp_path, PI5_DEBIAN)
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    with pytest.raises(OSError, match=r"^gpiochip10: "):
        gpio.header_pin_factory(bus)
    monkeypatch.setattr(gpio, "GPIO_BUS", bus)
    with pytest.raises(DrawerError, match=r"^GPIO 17: gpiochip10: "):
        GpioDrawer(DrawerConfig(pin=17))
    # A factory chosen already (the operator's, a mock) or no header: gpiozero decides.
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    assert gpio.header_pin_factory(bus) is None
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY")
    assert gpio.header_pin_factory(tmp_path / "no-gpio-at-all") is None
    monkeypatch.setattr(Device, "pin_factory", MockFactory())
    assert gpio.header_pin_factory(bus) is None


def test_lgpio_starts_where_the_current_folder_is_read_only(tmp_path):
    """Real lgpio makes a named pipe in the current folder on import and fails in a
    read-only one (anywhere on the image's root). Here the folder is made to look
    read-only to os.access, as a read-only mount does (EROFS, even for root)."""
    here, scratch = tmp_path / "here", tmp_path / "scratch"
    here.mkdir()
    scratch.mkdir()
    code = (
        "import os\n"
        "real = os.access\n"
        "os.access = lambda p, m, **kw: False if (p, m) == (os.getcwd(), os.W_OK) else real(p, m)\n"
        "from kiosk.drivers.gpio import lgpio_factory_class\n"
        "print(lgpio_factory_class().__name__, os.getcwd())\n"
    )
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": str(Path(__file__).parent.parent)}
    done = subprocess.run([sys.executable, "-c", code], cwd=here, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["LGPIOFactory", str(here)]  # back where it was
    assert [p.name for p in scratch.iterdir()] == [".lgd-nfy0"] and not any(here.iterdir())
    # A writable folder: lgpio's own behaviour, the pipe where the program runs.
    plain = subprocess.run([sys.executable, "-c", "from kiosk.drivers.gpio import "
                            "lgpio_factory_class; lgpio_factory_class()"], cwd=here, env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert [p.name for p in here.iterdir()] == [".lgd-nfy0"]


# ---------------------------------------------------------------- diagnostics


def kiosk(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "kiosk.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_hw_commands(tmp_path):
    config = tmp_path / "k.toml"
    config.write_text(f'[printer]\nkind = "file"\ndevice = "{tmp_path / "lp0"}"\npaper_mm = 58\n')
    scan = kiosk(
        "hw", "scan-test", "--events", str(DATA / "de_layout.xkbcommon.json"), "--keymap", "de"
    )
    assert scan.returncode == 0
    assert "SKUZY-7  ->  InternalSku(sku='ZY-7')" in scan.stdout
    preview = tmp_path / "p.png"
    shown = kiosk("hw", "print-test", "--preview", str(preview), "--config", str(config))
    assert shown.returncode == 0 and preview.exists()
    from PIL import Image

    texts = {r.text for r in zxingcpp.read_barcodes(Image.open(preview))}
    assert "RCPdemo-01-000000" in texts
    printed = kiosk("hw", "print-test", "--config", str(config))
    assert printed.returncode == 0, printed.stderr
    assert b"\x1dv0" in (tmp_path / "lp0").read_bytes()  # the barcode, as a raster
    mocked = kiosk("hw", "drawer", "--mock")
    assert mocked.returncode == 0 and "GPIO 17:" in mocked.stdout
    if not Path("/proc/device-tree/model").exists():  # not a Pi: a clear, one-line refusal
        real = kiosk("hw", "drawer")
        assert real.returncode == 2 and "no GPIO here" in real.stderr
        assert len(real.stderr.strip().splitlines()) == 1
    if not Path("/dev/input").exists():
        listed = kiosk("hw", "scanners")
        assert listed.returncode == 2 and "no /dev/input here" in listed.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    refused = kiosk("hw", "scan-test", "--events", str(bad))
    assert refused.returncode == 2 and "not a recorded event file" in refused.stderr
    assert parse("[scanner]\nterminator = 'tab'\nfnc1 = '~'\n").scanner.fnc1 == "~"
