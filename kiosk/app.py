"""Wiring: config -> ledger, drivers, checkout, publisher -> the Kivy app.

`kiosk run` on a device uses the configured hardware; `kiosk run --demo` uses the
simulated scanner (type, paste or tap a demo barcode), a printer that shows PNG
previews, a drawer that only reports, the demo catalog on a local ledger in the
user's data folder, and, where mosquitto is installed, a local broker and shop
controller so shop stock updates live.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import platformdirs

from kiosk import __version__, i18n
from kiosk import strings as screen_strings
from kiosk.config import Config
from kiosk.drivers.base import DrawerError, MemoryDrawer, MemoryPrinter, PrinterError
from kiosk.i18n import N_

log = logging.getLogger(__name__)

DEMO_SHEET = [
    ("Highlighter", "4006381333931"),
    ("6 x water", "14001234000012"),
    ("Bananas 532 g", "2800123005320"),
    ("Cheese 4.37", "2100456004374"),
    ("Coffee (GS1)", "]C10100036000291452\x1d10LOT42"),
    ("Travel kit", "4001234000046"),
    ("Lager 18+", "4001234000084"),
    ("Misread", "4006381333932"),
]


# Kivy's interruptible clock: a scan handed over from the scanner's thread, and the
# checkout worker's answer, run at once instead of waiting for the next frame's tick
# (up to 1/60 s each way). Frames are still drawn only when something changed.
KIVY_CLOCK = "interrupt"
# The window when not full screen (the demo, a desktop), and no multisampling: the
# screens are upright rectangles and text, which it does not smooth, and it made every
# frame's swap ~4x dearer under Mesa's llvmpipe. (The benches' bare apps read these.)
WINDOW_SIZE = ("1280", "800")
MULTISAMPLES = "0"

PRINTER_STATES = {
    "ok": N_("ok"),
    "paper_low": N_("paper low"),
    "paper_out": N_("paper out"),
    "offline": N_("offline"),
    "preview": N_("preview"),
    "none": N_("none"),
}


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or (
        os.environ.get("SDL_VIDEODRIVER") in ("kmsdrm", "offscreen")
    )


class Hardware:
    """The drivers, for the checkout and the diagnostics screen."""

    def __init__(self, config: Config, printer, drawer, demo: bool):
        self.config = config
        self.printer = printer
        self.drawer = drawer
        self.demo = demo
        self.last_scan = ""
        self.publisher = None
        self.terminal = None  # the card terminal (kiosk.drivers.payment)

    def facts(self, language: str = i18n.SOURCE_LANGUAGE) -> list[str]:
        """The diagnostics screen's hardware lines, in the screen's language."""
        gettext = i18n.translator(language).gettext
        status = getattr(self.printer, "status", None)
        printer = status() if callable(status) else ("preview" if self.demo else "none")
        printer = gettext(PRINTER_STATES.get(printer, printer))
        drawer = (
            gettext("memory (demo)")
            if isinstance(self.drawer, MemoryDrawer)
            else self.config.drawer.kind
        )
        kind = gettext("PNG previews") if self.demo else self.config.printer.kind
        scanner = gettext("demo field") if self.demo else self.config.scanner.kind
        facts = [
            gettext("printer: {state} ({kind})").format(state=printer, kind=kind),
            gettext("drawer: {kind}").format(kind=drawer),
            gettext("scanner: {kind}  last scan {code}").format(
                kind=scanner, code=self.last_scan or "-"
            ),
        ]
        if self.terminal is not None:  # cached state: no terminal I/O on the UI thread
            if self.demo and self.terminal.kind != "manual":
                line = gettext("card terminal (simulated): {state}")
            else:
                line = gettext("card terminal: {state}")
            facts.append(line.format(state=self.terminal.state()))
        if self.publisher is not None:
            counts = self.publisher.store.counts()
            connected = self.publisher.connected.is_set()
            facts.append(
                gettext("outbox: {pending} pending, {dead} dead; broker {state}").format(
                    pending=counts.get("pending", 0),
                    dead=counts.get("dead", 0),
                    state=gettext("connected") if connected else gettext("offline"),
                )
            )
        facts.append(self.software(gettext))
        return facts

    def software(self, gettext) -> str:
        """The running version, the A/B slot it runs from and the other slot's version
        (from the update record kiosk-update-check keeps: the kiosk user cannot ask RAUC
        itself), and an update that was rolled back."""
        from kiosk.update.manager import status_fields  # noqa: PLC0415

        try:
            update = status_fields(self.config.update.state_file)
        except Exception:  # noqa: BLE001 - a damaged record: the version alone
            update = {}
        line = gettext("software: {version}").format(version=__version__)
        if update.get("slot"):
            line += "  " + gettext("slot {slot}, other slot {other}").format(
                slot=update["slot"], other=update.get("other") or "-"
            )
        if update.get("result") == "rolled_back":
            line += "  " + gettext("update to {version} rolled back").format(
                version=update.get("version", "?")
            )
        return line

    def print_test(self, language: str = i18n.SOURCE_LANGUAGE) -> str:
        from kiosk.drivers.sample import sample_receipt  # noqa: PLC0415

        gettext = i18n.translator(language).gettext
        try:
            self.printer.print_receipt(sample_receipt(self.config))  # the shop's language
        except PrinterError as exc:
            return gettext("print test failed: {error}").format(error=exc)
        return gettext("print test sent")

    def drawer_test(self, language: str = i18n.SOURCE_LANGUAGE) -> str:
        gettext = i18n.translator(language).gettext
        try:
            self.drawer.open()
        except DrawerError as exc:
            return gettext("drawer test failed: {error}").format(error=exc)
        return gettext("drawer pulsed")

    def printer_state(self) -> str:
        status = getattr(self.printer, "last_status", "ok")
        return status if status in ("ok", "paper_out", "offline") else "ok"


def _peewee_for_sqlite() -> None:
    """Import peewee with the PostgreSQL drivers hidden from it. peewee imports psycopg
    whenever it is installed (the shop controller's PostgreSQL): 0.1 s and ~13 MiB
    resident (asyncio, ssl, libpq) the kiosk never uses. Its ledger is SQLite, and the
    controller, also the demo's, runs in its own process (`kiosk controller`)."""
    hidden = ("psycopg", "psycopg2", "psycopg2cffi")
    if "peewee" in sys.modules or any(name in sys.modules for name in hidden):
        return
    try:
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]  # import -> ImportError
        import peewee  # noqa: F401, PLC0415
    finally:
        for name in hidden:
            del sys.modules[name]


def _kivy_environment(config: Config, demo: bool) -> None:
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_CLOCK", KIVY_CLOCK)
    kivy_home = Path(platformdirs.user_cache_dir("kiosk")) / "kivy"
    kivy_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KIVY_HOME", str(kivy_home))
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    from kivy.config import Config as KivyConfig  # noqa: PLC0415

    KivyConfig.set("kivy", "exit_on_escape", "0")
    KivyConfig.set("input", "mouse", "mouse,disable_multitouch")
    KivyConfig.set("graphics", "multisamples", MULTISAMPLES)
    if config.ui.fullscreen and not demo:
        KivyConfig.set("graphics", "fullscreen", "auto")
    else:
        KivyConfig.set("graphics", "width", WINDOW_SIZE[0])
        KivyConfig.set("graphics", "height", WINDOW_SIZE[1])


def run(
    config: Config,
    demo: bool,
    db_path: Path | None = None,
    offline: bool = False,
    out: Callable[[str], None] = print,
) -> None:
    started = time.time()
    os.environ.setdefault("KIOSK_STARTED_AT", str(started))
    _peewee_for_sqlite()
    from kiosk.checkout.session import Checkout  # noqa: PLC0415
    from kiosk.ledger.core import Ledger  # noqa: PLC0415

    # One line per record on stderr (the journal under systemd): scanner hot-plug, scans,
    # printer and drawer faults. Kivy logs through the same handler (KIVY_LOG_MODE=PYTHON).
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = screen_strings.load_overrides(config.ui.strings)
    data = Path(platformdirs.user_data_dir("kiosk"))
    if demo:
        from kiosk.demo.seed import seed  # noqa: PLC0415
        from kiosk.demo.session import demo_ledger_path  # noqa: PLC0415

        config = config.with_ledger_path(db_path or demo_ledger_path())
    elif db_path:
        config = config.with_ledger_path(db_path)
    ledger = Ledger.open(config)
    if demo:
        seed(ledger, out)
    printer, drawer = _drivers(config, demo, data)
    # The scanner is made before the window (a [scanner] that matches nothing is refused
    # at once, in one line) and started once the app can take its scans.
    scanner = None
    if not demo:
        from kiosk.drivers.factory import make_scanner  # noqa: PLC0415

        def on_scan(text: str) -> None:  # scanner thread -> UI thread -> checkout worker
            from kivy.clock import Clock  # noqa: PLC0415

            hardware.last_scan = text
            Clock.schedule_once(lambda dt: app.act("scan", text))

        scanner = make_scanner(config, on_scan)
    hardware = Hardware(config, printer, drawer, demo)
    terminal, simulator = _terminal(config, demo)
    hardware.terminal = terminal
    checkout = Checkout(ledger, printer, drawer, terminal=terminal)
    if not demo:  # the update switch waits for a quiet moment (kiosk.update.schedule)
        from kiosk.update.schedule import SessionWriter  # noqa: PLC0415

        session_file = SessionWriter(ledger.path.parent)
        session_file.note(checkout.state.value)
        checkout.subscribe(session_file.on_event)
    links = None
    services = None
    # The network note in English (the keys' source text): the screen shows it in its
    # reader's language, with the shop's own wording where [ui] strings has one.
    english = screen_strings.DEFAULTS
    note = english["offline"]
    if demo and not offline:
        from kiosk.demo.services import DemoServices  # noqa: PLC0415

        services = DemoServices(config, ledger.path, data / "demo-shop").start(
            english["offline"], english["online"]
        )
        hardware.publisher = services.publisher
        note = services.note
    elif not demo and not offline:
        from kiosk.shoplinks import ShopLinks  # noqa: PLC0415

        links = ShopLinks(config, ledger, checkout, hardware)  # started once selling
        note = f"{english['broker']} {config.mqtt.host}:{config.mqtt.port}"
    _kivy_environment(config, demo)
    from kiosk.screens.shell import KioskApp  # noqa: PLC0415
    from kiosk.screens.worker import CheckoutWorker  # noqa: PLC0415

    app = KioskApp(
        config,
        worker_factory=lambda deliver: CheckoutWorker(checkout, deliver),
        overrides=overrides,
        demo=demo,
        demo_codes=DEMO_SHEET if demo else [],
        services=services,
        hardware=hardware,
    )
    app.network_note = note
    from kivy.clock import Clock as KivyClock  # noqa: PLC0415

    # The terminal's thread pokes the app; the checkout takes its news on its own thread.
    checkout.terminal_notify = lambda: KivyClock.schedule_once(lambda dt: app.act("terminal_poll"))
    # Card payments a power cut left open are settled first (reversed or asked for).
    KivyClock.schedule_once(lambda dt: app.act("recover_payments"), 0)
    if links is not None:
        app.after_ready.append(lambda: links.start(app))
        KivyClock.schedule_interval(lambda dt: links.offer_catalog(app), 0.5)
    if scanner is not None:
        scanner.start()
    try:
        app.run()
    finally:
        if scanner is not None:
            scanner.stop()
        if links is not None:
            links.stop()
        terminal.close()
        if simulator is not None:
            simulator.stop()
        ledger.close()


def _terminal(config: Config, demo: bool):
    """The card terminal of [payment]. The demo drives a simulated ZVT terminal on
    127.0.0.1 when [payment] kind = "zvt" (or KIOSK_DEMO_TERMINAL=zvt), never hardware:
    KIOSK_DEMO_TERMINAL_STEP sets its pace (seconds per step), KIOSK_DEMO_TERMINAL_PLAN
    what its next payments do ("decline,approve", see kiosk.demo.terminal)."""
    from kiosk.drivers.payment import ManualTerminal, TerminalError, make_terminal  # noqa: PLC0415

    wanted = os.environ.get("KIOSK_DEMO_TERMINAL") or config.payment.kind
    if demo and wanted == "zvt":
        from kiosk.demo.terminal import TerminalSimulator  # noqa: PLC0415

        step = float(os.environ.get("KIOSK_DEMO_TERMINAL_STEP", "0.7"))
        simulator = TerminalSimulator(step_s=step).start()
        plans = [p for p in os.environ.get("KIOSK_DEMO_TERMINAL_PLAN", "").split(",") if p]
        simulator.plan(*plans)
        log.info("demo: simulated ZVT terminal on 127.0.0.1:%s", simulator.port)
        return make_terminal(config, demo_port=simulator.port), simulator
    if demo:
        return ManualTerminal(), None
    try:
        return make_terminal(config), None
    except TerminalError as exc:  # sell on with typed approval codes; staff are told
        log.error("card terminal: %s", exc)
        return ManualTerminal(), None


def _drivers(config: Config, demo: bool, data: Path):
    from kiosk.drivers.factory import make_drawer, make_printer  # noqa: PLC0415

    if demo:
        folder = Path(os.environ.get("KIOSK_ARTIFACTS", data / "previews"))
        return make_printer(config, folder / "receipts"), MemoryDrawer()
    try:
        printer = make_printer(config) or MemoryPrinter()
    except Exception as exc:  # noqa: BLE001 - sell on without a printer; staff are told
        log.error("printer: %s", exc)
        printer = MemoryPrinter()
        printer.fail_with = PrinterError(f"no printer: {exc}", "offline")
    try:
        drawer = make_drawer(config, printer)
    except DrawerError as exc:
        log.error("drawer: %s", exc)
        drawer = MemoryDrawer()
        drawer.fail_with = exc
    return printer, drawer
