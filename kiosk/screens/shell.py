"""The Kivy app: thin screens bound to the Checkout through a background worker.

Screens show `app.snap` (the checkout's snapshot) and call `app.act(method, ...)`;
nothing here touches SQL or a driver. The screen follows the checkout's state;
PIN pad, item lookup, text entry and diagnostics are overlays on top of it. The
count and receiving screens, and the cart at a staffed till, carry a quantity pad
(`QtyPad`): its OK replaces the selected line's quantity through the checkout.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.lang import Builder
from kivy.metrics import dp
from kivy.properties import (
    BooleanProperty,
    DictProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.label import Label
from kivy.uix.screenmanager import NoTransition, Screen
from kivy.uix.scrollview import ScrollView
from kivy.utils import escape_markup

from kiosk import __version__, i18n
from kiosk import strings as screen_strings
from kiosk.config import Config
from kiosk.i18n import N_, _n
from kiosk.screens.cart_rows import CartRows
from kiosk.screens.collector import Collector
from kiosk.screens.hiding import Hideable
from kiosk.screens.lazy import LazyScreens
from kiosk.screens.worker import CheckoutWorker

log = logging.getLogger(__name__)
WORKER_STUCK_S = 20.0  # one checkout call running longer than this withholds the watchdog
KV = Path(__file__).with_name("layout.kv")  # not kiosk.kv: Kivy would load that twice
SCREEN_FOR_STATE = {
    "attract": "attract",
    "scanning": "cart",
    "paying": "pay",
    "receipt": "receipt",
    "help": "help",
    "staff_menu": "staff",
    "returning": "returning",
    "counting": "counting",
    "receiving": "receiving",
    "kit": "kit",
}
PALETTES = {
    "normal": {
        "background": (0.07, 0.11, 0.18, 1),
        "text": (1, 1, 1, 1),
        "muted": (0.75, 0.8, 0.88, 1),
        "accent": (1, 0.82, 0.35, 1),
        "button": (0.2, 0.34, 0.56, 1),
        "button_text": (1, 1, 1, 1),
        "go": (0.13, 0.55, 0.3, 1),
        "alert": (0.72, 0.11, 0.11, 1),
    },
    "high_contrast": {
        "background": (0, 0, 0, 1),
        "text": (1, 1, 1, 1),
        "muted": (1, 1, 1, 1),
        "accent": (1, 1, 0, 1),
        "button": (1, 1, 0, 1),
        "button_text": (0, 0, 0, 1),
        "go": (0, 1, 0, 1),
        "alert": (1, 0, 0, 1),
    },
}
NOTES = ("5", "10", "20", "50")
ALERT_SHOWN_S = 60
SALE_SCREENS = ("cart", "pay", "receipt")  # built after READY, one at a time
PREBUILD_GAP_S = 0.1
# A customer's language choice on the attract screen lasts this long without a scan;
# any sale or session that ends back on the attract screen resets it at once.
LANGUAGE_CHOICE_S = 90
ROLES = {
    "self-checkout": N_("self-checkout"),
    "staffed": N_("staffed till"),
    "mobile-cart": N_("mobile cart"),
}
WELCOME = "Scan an item to start"  # the checkout's welcome (the attract headline says it)
# The staff flows' screens: name, title, hint (keys of kiosk.strings), finishing action.
FLOWS = (
    ("returning", "return_items", "scan_receipt", ("finish_return", "unwanted")),
    ("kit", "kit_assembly", "", ("build_kit", 1)),
)

# The count and receiving screens: name, title, hint (kiosk.strings keys), finishing action.
STOCK_FLOWS = (
    ("counting", "cycle_count", "scan_shelf", ("finish_count",)),
    ("receiving", "receiving", "scan_delivery", ("finish_receiving",)),
)
PAD_DIGITS = 10  # characters on the pad: 1000000 pieces or 1000.000 kg fit, and then some
STOCK_ROWS = 60  # lines shown on a count or receiving list (newest first); the rest is counted


class QuietScrollView(ScrollView):
    """A ScrollView whose bar takes its resting colour at once instead of fading to it.
    Kivy's fade is an Animation started half a second after every change of the list:
    some 15 redraws of the whole window in the next half second, each a full buffer swap
    (30-70 ms under software rendering), which is when the next scan arrived and waited:
    most of a scan's latency on the bench (bench/scan_bench.py)."""

    def _bind_inactive_bar_color(self, *largs) -> None:
        self.funbind("bar_color", self._change_bar_color)
        self.fbind("bar_inactive_color", self._change_bar_color)
        self._bar_color = self.bar_inactive_color


class KioskScreen(Screen):
    pass


class AttractScreen(KioskScreen):
    pass


class CartScreen(KioskScreen):
    pass


class PayScreen(KioskScreen):
    pass


class ReceiptScreen(KioskScreen):
    pass


class HelpScreen(KioskScreen):
    pass


class PinScreen(KioskScreen):
    pass


class LookupScreen(KioskScreen):
    pass


class StaffScreen(KioskScreen):
    pass


class TextScreen(KioskScreen):
    pass


class DiagnosticsScreen(KioskScreen):
    pass


class PaymentsScreen(KioskScreen):
    """Staff menu: card payments and refunds the terminal left unsettled."""


class ThanksScreen(KioskScreen):
    pass


class FlowScreen(KioskScreen):
    title = StringProperty("")
    hint = StringProperty("")
    finish_action: tuple = ()

    def finish(self) -> None:
        App.get_running_app().act(*self.finish_action)


class StockScreen(KioskScreen):
    """Counting or receiving: the lines (newest first) beside the quantity pad."""

    title = StringProperty("")
    hint = StringProperty("")
    selected = StringProperty("")  # the SKU the pad sets, from the checkout's snapshot
    finish_action: tuple = ()

    def finish(self) -> None:
        App.get_running_app().act(*self.finish_action)


def _flow_screen(kind: type, finish: tuple) -> Screen:
    screen = kind()
    screen.finish_action = finish
    return screen


class QtyPad(Hideable, BoxLayout):
    """Digits typed for one line; OK hands them to the app (`pad_ok`), which calls the
    checkout for the screen the pad is on. The checkout checks every bound."""

    entry = StringProperty("")  # as typed, "." for the decimal mark
    caption = StringProperty("")  # Quantity, or Weight in kg
    target = StringProperty("")  # the line's item name ("" : nothing to set)
    decimals = BooleanProperty(False)  # a weighed line: the decimal key works
    mark = StringProperty(".")  # the decimal mark as the screen's language writes it
    shown = StringProperty("")  # the entry with the language's decimal mark

    def on_entry(self, *_args) -> None:
        self.shown = self.entry.replace(".", self.mark)

    on_mark = on_entry

    def press(self, key: str) -> None:
        if key == "clear":
            self.entry = ""
        elif key == "del":
            self.entry = self.entry[:-1]
        elif key == "." and (not self.decimals or "." in self.entry):
            return
        elif len(self.entry) < PAD_DIGITS:
            self.entry = ("0" if key == "." and not self.entry else "") + self.entry + key
        App.get_running_app()._export()

    def ok(self) -> None:
        if self.entry and self.target:
            App.get_running_app().pad_ok(self)


class Shell(BoxLayout):
    pass


class KioskApp(App):
    snap = DictProperty({"state": "attract", "message": "", "total": "0", "lines": []})
    strings = DictProperty()  # the screen strings in the screen's language now
    language = StringProperty(i18n.SOURCE_LANGUAGE)  # the customer's screen language
    languages = ListProperty()  # (code, name in itself) of the attract screen's buttons
    colors = DictProperty()
    config_data = ObjectProperty()
    demo = BooleanProperty(False)
    pin = StringProperty("")
    pin_message = StringProperty("")
    last_line = StringProperty("")
    preview_path = StringProperty("")
    network_note = StringProperty("")  # in English (kiosk.strings' source text): see below
    network_text = StringProperty("")  # the note in the screen's language
    diagnostics_text = StringProperty("")
    text_prompt = StringProperty("")
    # Plain properties for the kv rules (a rule bound to a dict's .get() is not re-run).
    message_text = StringProperty("")
    total_text = StringProperty("")
    due_text = StringProperty("")
    change_text = StringProperty("")
    staff_text = StringProperty("")
    alert_text = StringProperty("")  # for staff: a fault that needs them (full disk, printer)
    terminal_text = StringProperty("")  # what the card terminal asks of the customer now
    card_terminal = BooleanProperty(False)  # a connected terminal: no approval code typed
    payments_text = StringProperty("")  # the staff menu's unsettled card payments
    shop_alert_text = StringProperty("")  # the shop's open alerts (staffed tills, carts)
    demo_codes = ListProperty()
    till_pad = BooleanProperty(False)  # staffed tills and carts: the cart's quantity pad
    selected_line = NumericProperty(0)  # the cart line the till pad sets (0: the last)

    def __init__(
        self,
        config: Config,
        worker_factory: Callable[[Callable], CheckoutWorker],
        overrides: screen_strings.Overrides | None = None,
        demo: bool = False,
        demo_codes: list[tuple[str, str]] | None = None,
        services: Any = None,
        hardware: Any = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.config_data = config
        self.overrides = overrides or {}
        self.shop_language = config.ui.language
        self.language = self.shop_language
        self.strings = screen_strings.for_language(
            self.language, self.overrides, self.shop_language
        )
        choices = config.ui.screen_languages
        self.languages = [(c, i18n.language_name(c)) for c in choices] if len(choices) > 1 else []
        self.colors = PALETTES["high_contrast" if config.ui.high_contrast else "normal"]
        self.till_pad = config.device.role != "self-checkout"
        self.demo = demo
        self.demo_codes = demo_codes or []
        self.worker_factory = worker_factory
        self.services = services
        self.hardware = hardware
        self.overlay: str | None = None
        self._storage_full_shown = ""
        self._language_reset_due = False
        self.text_action: str | None = None
        self.dynamic: dict[str, Any] = {}
        self.ready = False
        # Started once READY is sent (kiosk.app: the shop's MQTT links), off the boot's
        # critical path.
        self.after_ready: list[Callable[[], None]] = []
        self._exported_extra: dict = {}  # kept in every later UI state (_export)
        self.title = f"kiosk {config.device.id}"

    # ------------------------------------------------------------ building

    def build(self):
        Builder.load_file(str(KV))
        # Every screen's background: the window's clear, not a rectangle drawn over it.
        Window.clearcolor = self.colors["background"]
        shell = Shell()
        manager: LazyScreens = shell.ids.screens
        manager.transition = NoTransition()
        for name, make in (
            ("attract", AttractScreen),
            ("cart", CartScreen),
            ("pay", PayScreen),
            ("receipt", ReceiptScreen),
            ("help", HelpScreen),
            ("pin", PinScreen),
            ("lookup", LookupScreen),
            ("staff", StaffScreen),
            ("text", TextScreen),
            ("diagnostics", DiagnosticsScreen),
            ("payments", PaymentsScreen),
            ("thanks", ThanksScreen),
        ):
            manager.register(name, make)
        for name, _title, _hint, finish in FLOWS:
            manager.register(name, lambda f=finish: _flow_screen(FlowScreen, f))
        for name, _title, _hint, finish in STOCK_FLOWS:
            manager.register(name, lambda f=finish: _flow_screen(StockScreen, f))
        manager.on_built = self._screen_built
        self._fill_demo_sheet(shell)
        self.worker = self.worker_factory(lambda fn: Clock.schedule_once(lambda dt: fn()))
        self.collector = Collector()  # full garbage collections between customers
        manager.current = "attract"
        self.network_text = self._network_text()
        Clock.schedule_interval(lambda dt: self.worker.call("tick", then=self._ticked), 1.0)
        Clock.schedule_once(lambda dt: self._first_frame(), 0)
        return shell

    def _screen_built(self, screen) -> None:
        """A screen built on first use (kiosk/screens/lazy.py): its buttons made here,
        its words and lists filled from the state of this moment."""
        if screen.name == "pin":
            for key in ["1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "del"]:
                button = self._button({"del": "<"}.get(key, key), lambda k=key: self.pin_key(k))
                screen.ids.pad.add_widget(button)
                self.dynamic[f"pin_{key}"] = button
        elif screen.name == "pay":
            for note in ("exact", *NOTES):
                button = self._button("", lambda n=note: self.pay_cash(n))
                screen.ids.notes.add_widget(button)
                self.dynamic[f"cash_{note}"] = button
        elif screen.name == "attract":
            for code, name in self.languages:
                button = Button(
                    text=name,
                    font_size="20sp",
                    background_normal="",
                    on_release=lambda *_a, c=code: self.choose_language(c),
                )
                screen.ids.languages.add_widget(button)
                self.dynamic[f"language_{code}"] = button
        if self.root is None:  # attract, built inside build(): the texts follow there
            Clock.schedule_once(lambda dt: self._screen_filled(), 0)
        else:
            self._screen_filled()

    def _screen_filled(self) -> None:
        self._language_texts(self.root)
        self._refresh_lists()

    def _fill_demo_sheet(self, shell) -> None:
        sheet = shell.ids.demo_sheet
        for index, (label, code) in enumerate(self.demo_codes):
            button = Button(
                text=label, font_size="14sp", on_release=lambda *_a, c=code: self.act("scan", c)
            )
            sheet.add_widget(button)
            self.dynamic[f"sheet_{index}"] = button

    def _button(self, text: str, action: Callable[[], None]) -> Button:
        button = Button(
            text=text,
            font_size="24sp",
            size_hint_y=None,
            height=dp(72),
            background_normal="",
            background_color=self.colors["button"],
            color=self.colors["button_text"],
        )
        button.bind(on_release=lambda *_a: action())
        return button

    # ------------------------------------------------------------ languages

    def choose_language(self, language: str) -> None:
        """The customer's screen language, from the attract screen's buttons. It lasts
        for this customer: back on the attract screen after a sale, or after
        LANGUAGE_CHOICE_S untouched, the shop's language returns."""
        self._set_language(language)
        Clock.unschedule(self._language_timeout)
        if language != self.shop_language:
            Clock.schedule_once(self._language_timeout, LANGUAGE_CHOICE_S)
        self._export()

    def _language_timeout(self, _dt=None) -> None:
        if self.snap.get("state") == "attract" and self.overlay is None:
            self._set_language(self.shop_language)
            self._export()

    def _set_language(self, language: str) -> None:
        if language == self.language:
            return
        self.language = language
        self.strings = screen_strings.for_language(language, self.overrides, self.shop_language)
        if self.root is not None:
            self._language_texts(self.root)
            self._render_snap()
            self._refresh_lists()

    def on_network_note(self, *_args) -> None:
        self.network_text = self._network_text()

    def _network_text(self) -> str:
        """The network note (offline / shop stock live / broker ...) in the screen's
        language: it starts with one of these screen strings' English text."""
        note = self.network_note
        for key in ("offline", "online", "broker"):
            english = screen_strings.DEFAULTS[key]
            if note.startswith(english):
                return self.strings[key] + note[len(english) :]
        return i18n.render(note, self.language)

    def _language_texts(self, shell) -> None:
        """What Python (not the kv rules) put on screen in words or money."""
        self.network_text = self._network_text()
        # (only what is built: kiosk/screens/lazy.py)
        if "pin_clear" in self.dynamic:
            self.dynamic["pin_clear"].text = self.strings["clear"]
        if "cash_exact" in self.dynamic:
            for note in ("exact", *NOTES):
                label = self.strings["exact"] if note == "exact" else self.money(note)
                self.dynamic[f"cash_{note}"].text = label
        for name, title, hint, _finish in FLOWS + STOCK_FLOWS:
            flow = shell.ids.screens.built(name)
            if flow is not None:
                flow.title = self.strings[title]
                flow.hint = self.strings[hint] if hint else ""
        for code, _name in self.languages if shell.ids.screens.built("attract") else ():
            button = self.dynamic[f"language_{code}"]
            chosen = code == self.language
            button.background_color = self.colors["go" if chosen else "button"]
            button.color = self.colors["button_text"]
            button.bold = chosen

    def _first_frame(self) -> None:
        self.refocus()
        self.worker.call("refresh", then=self._first_state)
        if os.environ.get("KIOSK_STARTED_AT"):
            started = float(os.environ["KIOSK_STARTED_AT"])
            self._export({"first_frame_s": time.time() - started})

    def _first_state(self, outcome, snap: dict, events: list) -> None:
        self._done(outcome, snap, events)
        # READY once the checkout's state is on screen, not at the bare first frame:
        # first-boot work (GL shader compiles, font and Kivy caches) falls under
        # TimeoutStartSec rather than the watchdog.
        Clock.schedule_once(lambda dt: self._announce_ready(), 0)

    def _announce_ready(self) -> None:
        from kiosk.service import ServiceNotifier  # noqa: PLC0415

        self.ready = True
        self.notifier = ServiceNotifier()
        self._last_feed = 0.0
        self.notifier.ready(f"{self.config_data.device.id}: selling screen shown")
        for start in self.after_ready:  # in the frames after READY's
            Clock.schedule_once(lambda dt, start=start: start(), 0)
        # The screens every sale passes through, built while the kiosk waits for its
        # first customer rather than at that customer's first scan, payment and receipt.
        for step, name in enumerate(SALE_SCREENS, 1):
            Clock.schedule_once(lambda dt, name=name: self.root.ids.screens.get_screen(name),
                                PREBUILD_GAP_S * step)  # fmt: skip
        if self.notifier.watchdog_interval:
            Clock.schedule_interval(
                lambda dt: self._feed_watchdog(), self.notifier.watchdog_interval
            )

    def _feed_watchdog(self) -> None:
        """From the UI loop, and only while the checkout worker keeps up: a frozen
        screen or a stuck worker stops the pings and systemd restarts the kiosk. Why a
        ping is late or withheld goes to the journal, so a restart can be explained."""
        now = time.monotonic()
        late = now - self._last_feed - self.notifier.watchdog_interval
        if self._last_feed and late > self.notifier.watchdog_interval / 2:
            log.warning("UI loop was %.1f s late for the watchdog", late)
        self._last_feed = now
        if self.worker.responsive(stuck_after=WORKER_STUCK_S):
            self.notifier.ping()
        else:
            log.warning("watchdog not fed: checkout.%s has run for %.0f s",
                        self.worker.busy_with, self.worker.busy_for())  # fmt: skip

    def on_stop(self) -> None:
        self.worker.stop()
        if self.services is not None:
            self.services.stop()

    # ------------------------------------------------------------ acting

    def act(self, method: str, *args: Any) -> None:
        if self.overlay == "thanks":  # the next customer starts: the thank-you makes way
            self.close_overlay()
        self.worker.call(method, *args, then=self._done)

    def _ticked(self, outcome, snap, events) -> None:
        if self.overlay == "diagnostics":
            self._refresh_diagnostics()
        self.collector.idle(snap.get("state") == "attract" and self.worker.idle())
        if snap.get("state") != self.snap.get("state") or outcome.message:
            self._done(outcome, snap, events)

    def _done(self, outcome, snap: dict, events: list) -> None:
        left = self.snap.get("state")
        if len(snap.get("lines") or ()) != len(self.snap.get("lines") or ()):
            self.selected_line = 0  # a line came or went: the pad sets the last one again
        self.snap = snap
        self._clear_pads()  # whatever the checkout did, the next digits are for a new entry
        ended = snap.get("state") == "attract" and left != "attract"
        if snap.get("state") != "attract" or ended:
            Clock.unschedule(self._language_timeout)  # a customer is at it: keep theirs
        self._render_snap()
        if ended:  # after this frame: the customer sees the attract screen first
            Clock.schedule_once(lambda dt: self.collector.between_customers(), 0.2)
        printed = False
        for event in events:
            if event.kind == "alert":
                self._show_alert(event.detail["text"])
            elif event.kind == "printed" and self.hardware is not None:
                files = getattr(self.hardware.printer, "files", [])
                self.preview_path = str(files[-1]) if files else ""
                printed = bool(files)
            elif event.kind == "staff" and self.overlay == "pin":
                self.close_overlay()
        full = self.strings["storage_full"]
        if snap.get("storage_full"):  # stays up, in the shop's words, until there is space
            self.alert_text = self._storage_full_shown = full
        elif self.alert_text and self.alert_text == self._storage_full_shown:
            self.alert_text = ""
        self._refresh_lists()
        if printed and self.demo and snap["state"] in ("attract", "scanning"):
            # The customer is done: thank them with the receipt preview for a while.
            self._overlay("thanks")
            timeout = self.config_data.checkout.receipt_timeout_s
            Clock.schedule_once(lambda dt: self._close_thanks(), timeout)
        if ended:  # the session ended: the next customer starts in the shop's language,
            self._language_reset_due = True  # once this one's thank-you has gone
            if self.overlay != "thanks":
                self._reset_language()
        if self.overlay is None:
            self.show(SCREEN_FOR_STATE.get(snap["state"], "attract"))
        self.refocus()
        self._export()

    def _reset_language(self) -> None:
        self._language_reset_due = False
        self._set_language(self.shop_language)

    def _render_snap(self) -> None:
        """The snapshot's words and amounts in the screen's language."""
        snap = self.snap
        message = snap.get("message") or ""
        # The checkout's welcome repeats the attract headline (translated): not twice.
        self.message_text = "" if str(message) == WELCOME else i18n.render(message, self.language)
        self.total_text = self.money(snap.get("total"))
        self.due_text = self.money(snap.get("due") or snap.get("total"))
        change = snap.get("change")
        self.change_text = self.money(change) if change and Decimal(change) else ""
        self.staff_text = snap.get("staff") or ""
        terminal = snap.get("terminal") or {}
        self.card_terminal = terminal.get("kind", "manual") != "manual"
        status = terminal.get("status")
        self.terminal_text = (
            self.strings.get(f"terminal_{status}", " ".join(terminal.get("texts") or ()))
            if status and snap.get("state") == "paying"
            else ""
        )
        unsettled = snap.get("payments") or []
        self.payments_text = (
            "\n".join(i18n.render(text, self.language) for text in unsettled)
            or self.strings["no_unsettled"]
        )
        if self.alert_text and self.alert_text == self._storage_full_shown:
            self.alert_text = self.strings["storage_full"]
            self._storage_full_shown = self.alert_text

    def _show_alert(self, text: str) -> None:
        """A staff alert in the banner, for ALERT_SHOWN_S unless another one replaces it."""
        self.alert_text = i18n.render(text, self.language)
        Clock.unschedule(self._clear_alert)
        Clock.schedule_once(self._clear_alert, ALERT_SHOWN_S)

    def _clear_alert(self, _dt=None) -> None:
        if not self.snap.get("storage_full"):
            self.alert_text = ""

    def ack_shop_alert(self) -> None:
        """Staff tap the shop alert bar: the newest alert is acknowledged everywhere."""
        alerts = getattr(self, "kiosk_alerts", None)  # kiosk.mqtt.alerts, set by kiosk.app
        if alerts is not None:
            alerts.acknowledge_newest(self.staff_text or "staff")

    def show(self, name: str) -> None:
        self.root.ids.screens.current = name

    def refocus(self) -> None:
        if self.demo and self.overlay is None:
            self.root.ids.demo_scanner.focus = True

    def gettext(self, msgid: str) -> str:
        """A word in the screen's language (the source text marked where it is written)."""
        return i18n.gettext(self.language, msgid)

    def money(self, amount) -> str:
        """An amount as the screen's language writes it: `1,49 €` in German."""
        value = Decimal(str(amount or "0")).quantize(self.config_data.money.minor_unit)
        return i18n.format_money(value, self.config_data.money.currency, self.language)

    # ------------------------------------------------------------ screens' helpers

    def demo_scan(self, text: str) -> None:
        if text.strip():
            self.act("scan", text.strip())

    def _close_thanks(self) -> None:
        if self.overlay == "thanks":
            self.close_overlay()

    def pay_cash(self, note: str) -> None:
        if note == "exact":
            self.act("tender_cash", self.snap.get("due") or self.snap.get("total"))
        else:
            self.act("tender_cash", note)

    def pay_card(self, reference: str) -> None:
        if self.card_terminal and not reference.strip():
            self.act("tender_card")  # the terminal takes the amount due
        else:
            self.act("tender_card", None, reference.strip() or None)

    def open_pin(self) -> None:
        self.pin, self.pin_message = "", ""
        self._overlay("pin")

    def pin_key(self, key: str) -> None:
        if key == "clear":
            self.pin = ""
        elif key == "del":
            self.pin = self.pin[:-1]
        elif len(self.pin) < 8:
            self.pin += key
        self._export()

    def submit_pin(self) -> None:
        pin, self.pin = self.pin, ""

        def done(outcome, snap, events) -> None:
            if outcome.ok:
                self.overlay = None
            else:
                self.pin_message = i18n.render(outcome.message, self.language)
            self._done(outcome, snap, events)

        self.worker.call("staff_login", pin, then=done)

    def open_lookup(self) -> None:
        self._overlay("lookup")
        screen = self.root.ids.screens.get_screen("lookup")
        screen.ids.query.text = ""
        screen.ids.query.focus = True

    def open_text(self, prompt: str, action: str) -> None:
        self.text_prompt, self.text_action = prompt, action
        self._overlay("text")
        field = self.root.ids.screens.get_screen("text").ids.value
        field.text = ""
        field.focus = True

    def submit_text(self, value: str) -> None:
        action, self.text_action = self.text_action, None
        self.close_overlay()
        if action and value.strip():
            self.act(action, value.strip())

    def open_diagnostics(self) -> None:
        self._diagnostics_tested = ""  # what a print or drawer test said, kept below
        self._refresh_diagnostics()
        self._overlay("diagnostics")

    def _refresh_diagnostics(self) -> None:
        """Again every second while shown: a technician sees the terminal register,
        the printer's state change and the last scan as they happen."""
        self.diagnostics_text = self._diagnostics() + getattr(self, "_diagnostics_tested", "")
        self._export()

    def open_payments(self) -> None:
        """Staff menu: what the card terminal left unsettled, and what to do about it."""
        self._overlay("payments")
        self.act("list_payments")

    def print_test(self) -> None:
        if self.hardware is not None:
            self._diagnostics_tested = "\n" + self.hardware.print_test(self.language)
            self._refresh_diagnostics()

    def drawer_test(self) -> None:
        if self.hardware is not None:
            self._diagnostics_tested = "\n" + self.hardware.drawer_test(self.language)
            self._refresh_diagnostics()

    def _diagnostics(self) -> str:
        cfg = self.config_data
        device = self.gettext("{device} at {store} ({role})").format(
            device=cfg.device.id, store=cfg.device.store, role=self.gettext(ROLES[cfg.device.role])
        )
        lines = [
            f"{self.strings['version']}: kiosk {__version__}",
            f"{self.strings['device']}: {device}",
            f"{self.strings['broker']}: {cfg.mqtt.host}:{cfg.mqtt.port}  {self.network_text}",
        ]
        if self.hardware is not None:
            lines += self.hardware.facts(self.language)
        return "\n".join(lines)

    def _overlay(self, name: str) -> None:
        self.overlay = name
        self.show(name)
        self._export()

    def close_overlay(self) -> None:
        if self.overlay == "thanks" and self._language_reset_due:
            self._reset_language()
        self.overlay = None
        self.show(SCREEN_FOR_STATE.get(self.snap.get("state", "attract"), "attract"))
        self.refocus()
        self._export()

    # ------------------------------------------------------------ the quantity pad

    def _pads(self) -> dict[str, QtyPad]:
        """The pads of the screens built so far."""
        screens = self.root.ids.screens
        built = {name: screens.built(name) for name in ("cart", "counting", "receiving")}
        return {name: screen.ids.qty_pad for name, screen in built.items() if screen}

    def _clear_pads(self) -> None:
        if self.root is not None:
            for pad in self._pads().values():
                pad.entry = ""

    def pad_ok(self, pad: QtyPad) -> None:
        """The pad's OK: the typed quantity replaces its line's, through the checkout
        (which refuses what is out of bounds, in one line)."""
        typed = pad.entry
        screen = self.root.ids.screens.current
        if screen in ("counting", "receiving"):
            selected = (self.snap.get("stock_lines") or {}).get("selected") or {}
            if selected.get("sku"):
                self.act("set_stock_line", selected["sku"], typed)
        elif screen == "cart":
            line = self._till_line()
            if line is None:
                self.act("quantity", typed)  # an empty cart: the next scan counts this often
            else:
                self.act("set_quantity", line["line"], typed)

    def _till_line(self) -> dict | None:
        lines = self.snap.get("lines") or []
        if not lines:
            return None
        chosen = int(self.selected_line)
        return lines[chosen - 1] if 1 <= chosen <= len(lines) else lines[-1]

    def select_line(self, number: int) -> None:
        """A tap on a cart line at a staffed till: the pad sets that line."""
        self.selected_line = number
        self._refresh_lists()
        self._export()

    def _decimal_mark(self) -> str:
        return i18n.format_number(Decimal("1.5"), self.language)[1]  # "." or ","

    def _fill_pads(self) -> None:
        """What each pad sets now, in the screen's language."""
        mark = self._decimal_mark()
        pads = self._pads()
        line = self._till_line()
        cart = pads.get("cart")
        if cart is not None:
            cart.mark = mark
            cart.target = line["name"] if line else self.strings["next_scan"]
            cart.decimals = bool(line) and line.get("unit") == "kg"
            cart.caption = self.strings["weight_kg" if cart.decimals else "quantity"]
        stock = self.snap.get("stock_lines") or {}
        selected = stock.get("selected") or {}
        for name in ("counting", "receiving"):
            pad = pads.get(name)
            if pad is None:
                continue
            pad.mark = mark
            pad.target = selected.get("name", "")
            pad.decimals = selected.get("unit") == "kg"
            pad.caption = self.strings["weight_kg" if pad.decimals else "quantity"]
            self.root.ids.screens.built(name).selected = selected.get("sku", "")

    # ------------------------------------------------------------ lists

    def _refresh_lists(self) -> None:
        """The lists of every screen built so far (kiosk/screens/lazy.py)."""
        screens = self.root.ids.screens
        for key in [k for k in self.dynamic if k.startswith(("remove_", "result_"))]:
            del self.dynamic[key]
        for key in [k for k in self.dynamic if k.startswith(("line_", "stock_"))]:
            del self.dynamic[key]
        lines = self.snap.get("lines", [])
        self.last_line = f"{lines[-1]['name']}  {self.money(lines[-1]['total'])}" if lines else ""
        cart = screens.built("cart")
        if cart is not None:
            self._cart_lines(cart, lines)
        lookup = screens.built("lookup")
        if lookup is not None:
            self._lookup_results(lookup)
        self._stock_lists()
        self._fill_pads()
        for name in ("returning", "kit"):
            flow = screens.built(name)
            if flow is not None:
                self._flow_items(flow, name)

    def _cart_lines(self, cart, lines: list[dict]) -> None:
        if getattr(self, "cart_rows", None) is None:  # rows kept: kiosk/screens/cart_rows.py
            remove = lambda n: self.act("remove_line", n)  # noqa: E731
            chooser = {"pick": self._row_button, "look": self._look_chosen,
                       "choose": self.select_line} if self.till_pad else {}  # fmt: skip
            self.cart_rows = CartRows(cart.ids.lines, self._label, self._button, remove, **chooser)
        chosen = self._till_line()
        texts = []
        for line in lines:
            flag = "" if line["approved"] else "  " + self.gettext("(age check)")
            qty = line["qty"]
            if line.get("unit") == "kg":  # the snapshot's unit, where the checkout gives it
                qty = i18n.format_weight(qty, self.language)
            else:
                qty = i18n.format_number(qty, self.language)
            name = f"{line['name']}{flag}"
            texts.append((escape_markup(name) if self.till_pad else name, qty,
                          self.money(line["total"])))  # fmt: skip
        number = lines.index(chosen) + 1 if chosen is not None else None
        rows = self.cart_rows.show(texts, self.strings["remove"], number)
        for number, row in enumerate(rows, 1):
            self.dynamic[f"remove_{number}"] = row.remove
            if self.till_pad:
                self.dynamic[f"line_{number}"] = row.name

    def _lookup_results(self, lookup) -> None:
        results = lookup.ids.results
        results.clear_widgets()
        for index, item in enumerate(self.snap.get("lookup") or []):
            text = f"{item['name']}  {self.money(item['price'])}"
            button = self._button(text, lambda sku=item["sku"]: self._pick(sku))
            results.add_widget(button)
            self.dynamic[f"result_{index}"] = button

    def _flow_items(self, flow, key: str) -> None:
        """What a return or a kit holds so far."""
        items = flow.ids["items"]
        items.clear_widgets()
        data = self.snap.get(key)
        if isinstance(data, dict) and key == "returning":
            texts = [
                self.gettext("receipt {number}").format(number=data["receipt"] or "-"),
                *data["lines"],
                *[self.gettext("out: {item}").format(item=n) for n in data["exchange"]],
            ]
        elif isinstance(data, dict) and key == "kit":
            texts = [f"{data['name']} ({data['sku']})"]
        else:
            texts = []
        for text in texts:
            items.add_widget(self._label(text, 1))

    def _stock_lists(self) -> None:
        """The count's or delivery's lines, newest first: name (SKU small, cases scanned),
        quantity, and for a count that is not blind what was expected and the difference."""
        view = self.snap.get("stock_lines") or {}
        name = {"count": "counting", "receive": "receiving"}.get(view.get("kind"))
        if name is None:
            return
        screen = self.root.ids.screens.built(name)
        if screen is None:  # built when shown, and filled then
            return
        blind = view.get("blind", False)
        if name == "counting":
            screen.hint = self.strings["blind_count" if blind else "pad_hint"]
        else:
            screen.hint = self.strings["pad_hint"]
        columns = [("item", 0.46), ("counted" if name == "counting" else "received", 0.18)]
        if name == "counting" and not blind:
            columns += [("expected", 0.18), ("difference", 0.18)]
        header = screen.ids.header
        header.clear_widgets()
        for key, share in columns:
            label = self._label(self.strings[key], share, muted=True)
            label.height = dp(32)
            header.add_widget(label)
        items = screen.ids["items"]
        items.clear_widgets()
        selected = (view.get("selected") or {}).get("sku")
        lines = view.get("lines") or []
        for line in lines[:STOCK_ROWS]:
            row = BoxLayout(size_hint_y=None, height=dp(64), spacing=dp(8))
            note = ", ".join(
                _n("{n} case of {pack}", "{n} cases of {pack}", c["cases"], pack=c["pack"]).render(
                    self.language
                )
                for c in line["cases"]
            )
            small = escape_markup(line["sku"] + (f"  {note}" if note else ""))
            pick = self._row_button(
                f"{escape_markup(line['name'])}\n[size=16sp]{small}[/size]",
                line["sku"] == selected,
                lambda sku=line["sku"]: self.act("select_stock_line", sku),
            )
            pick.size_hint_x = columns[0][1]
            row.add_widget(pick)
            row.add_widget(self._label(self._amount(line["qty"], line["unit"]), columns[1][1]))
            if len(columns) > 2:
                expected = line.get("expected")
                difference = line.get("difference")
                row.add_widget(self._label(self._amount(expected, line["unit"]), 0.18))
                shown = self._amount(difference, line["unit"], signed=True)
                label = self._label(shown, 0.18)
                if difference and Decimal(difference):  # a difference stands out, + or -
                    label.color = self.colors["accent"]
                    label.bold = True
                row.add_widget(label)
            items.add_widget(row)
            self.dynamic[f"stock_{line['sku']}"] = pick
        if len(lines) > STOCK_ROWS:
            more = self.gettext("{n} more lines").format(
                n=self._amount(len(lines) - STOCK_ROWS, "each")
            )
            items.add_widget(self._label(more, 1, muted=True))

    def _amount(self, value, unit: str, signed: bool = False) -> str:
        """A quantity in the item's unit as the screen's language writes it."""
        if value is None:
            return "-"
        if unit == "kg":
            text = i18n.format_weight(Decimal(str(value)), self.language)
        else:
            text = i18n.format_number(Decimal(str(value)), self.language)
        return f"+{text}" if signed and Decimal(str(value)) > 0 else text

    def _look_chosen(self, button: Button, chosen: bool) -> None:
        """The chosen line of a list stands out (the pad sets it)."""
        button.background_color = self.colors["button"] if chosen else (0, 0, 0, 0)
        button.color = self.colors["button_text"] if chosen else self.colors["text"]

    def _row_button(self, text: str, chosen: bool, action: Callable[[], None]) -> Button:
        """A list line's name: tap to choose it for the pad; the chosen one stands out."""
        button = Button(
            text=text,
            markup=True,
            font_size="22sp",
            halign="left",
            valign="middle",
            background_normal="",
        )
        self._look_chosen(button, chosen)
        button.bind(size=lambda w, *_: setattr(w, "text_size", (w.width - dp(16), w.height)))
        button.bind(on_release=lambda *_a: action())
        return button

    def _label(self, text: str, share: float, muted: bool = False) -> Label:
        label = Label(
            text=text,
            font_size="18sp" if muted else "22sp",
            color=self.colors["muted" if muted else "text"],
            size_hint=(share, None),
            height=dp(48),
            halign="left",
        )
        label.bind(size=lambda w, *_: setattr(w, "text_size", (w.width, None)))
        return label

    def _pick(self, sku: str) -> None:
        self.close_overlay()
        self.act("add_item", sku)

    # ------------------------------------------------------------ test hooks

    def _export(self, extra: dict | None = None) -> None:
        """With KIOSK_UI_STATE set, write the screen, the snapshot and where every named
        widget is, so tests can drive the app with real X input and check its state.
        Written after the next layout pass, so positions are where the widgets are drawn."""
        if os.environ.get("KIOSK_UI_STATE") and self.root is not None:
            # Extras (the first frame's time) stay in every later state: a reader polling
            # the file must not miss one that the next export replaced.
            self._exported_extra.update(extra or {})
            Clock.schedule_once(lambda dt: self._export_now(), 0.05)

    def _export_now(self) -> None:
        folder = os.environ.get("KIOSK_UI_STATE")
        screen = self.root.ids.screens.current_screen
        widgets, texts = {}, {}
        named = {
            **screen.ids,
            **{f"demo_{k}": v for k, v in self.root.ids.items() if k.startswith("demo")},
            **self.dynamic,
        }
        pad = screen.ids.get("qty_pad")
        if pad is not None and pad.visible:  # the quantity pad's keys: pad_key_7, pad_key_ok
            named.update({f"pad_{k}": v for k, v in pad.ids.items()})
        for name, widget in named.items():
            if widget.get_root_window() is None or widget.opacity == 0:
                continue
            x, y = widget.to_window(*widget.pos)
            widgets[name] = [x + widget.width / 2, Window.height - (y + widget.height / 2)]
            if isinstance(getattr(widget, "text", None), str):
                texts[name] = widget.text  # what it says now, in the screen's language
        state = {
            "screen": screen.name,
            "overlay": self.overlay,
            "snap": self.snap,
            "pin": len(self.pin),
            "pin_message": self.pin_message,
            "preview": self.preview_path,
            "widgets": widgets,
            "texts": texts,
            "language": self.language,
            "idle": self.worker.idle(),
            "alert": self.alert_text,
            "terminal": self.terminal_text,
            "diagnostics": self.diagnostics_text,
            "pad": {"entry": pad.entry, "target": pad.target} if pad is not None else None,
            **self._exported_extra,
        }
        path = Path(folder) / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, default=str))
        tmp.replace(path)

    def on_start(self) -> None:
        folder = os.environ.get("KIOSK_UI_STATE")
        if folder:
            Clock.schedule_interval(lambda dt: self._serve_requests(Path(folder)), 0.1)

    def _serve_requests(self, folder: Path) -> None:
        for request in folder.glob("shot-*.request"):
            target = Path(request.read_text().strip())
            target.parent.mkdir(parents=True, exist_ok=True)
            # The real frame buffer; Window.screenshot numbers its files (x0001.png).
            written = Window.screenshot(name=str(target.with_suffix("")) + ".png")
            if written:
                Path(written).replace(target)
            request.unlink()
            (folder / (request.stem + ".done")).write_text(str(target))
        if (folder / "export.request").exists():
            (folder / "export.request").unlink()
            self._export()
        for request in folder.glob("act-*.request"):  # benchmarks drive the checkout directly
            for method, *args in json.loads(request.read_text()):
                self.act(method, *args)
            request.unlink()
