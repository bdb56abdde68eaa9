"""Every string the screens show, by key, translated through the gettext catalogs.

The values below are the English source text (msgids, marked with `N_` for
`pybabel extract`); `for_language("de")` gives the same keys in German from
kiosk/locale (see kiosk/i18n.py). The kv file and the screens read them by key
(`app.strings["pay"]`), so switching the screen language is one dict swap.

A shop can still override any of them with a TOML file named by `[ui] strings`
(the config contract of earlier versions, kept): top-level keys override the
shop's own language (`[ui] language`), a table per language overrides that one:

    attract_title = "Willkommen bei Müller: bitte scannen"   # the shop's language
    [fr]
    attract_title = "Bienvenue chez Müller : scannez un article"

Unknown keys and unknown languages are refused. Messages from the checkout itself
(what went wrong, what to do next) come from kiosk/checkout as kiosk.i18n Messages.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from kiosk import i18n, textfile
from kiosk.i18n import N_

DEFAULTS: dict[str, str] = {
    "attract_title": N_("Scan an item to start"),
    "attract_hint": N_("Hold the barcode under the scanner"),
    "look_up": N_("Look up item"),
    "call_staff": N_("Call staff"),
    "staff": N_("Staff"),
    "pay": N_("Pay"),
    "cancel_sale": N_("Cancel"),
    "remove": N_("Remove"),
    "total": N_("Total"),
    "to_pay": N_("To pay"),
    "cash": N_("Cash"),
    "card": N_("Card"),
    "exact": N_("Exact"),
    "back": N_("Back"),
    "card_follow": N_("Follow the card terminal, then type its approval code"),
    "approval_code": N_("Approval code"),
    "confirm": N_("Confirm"),
    "paid_thanks": N_("Paid, thank you!"),
    "change": N_("Change"),
    "print_receipt": N_("Print receipt"),
    "no_receipt": N_("No receipt"),
    "help_title": N_("Staff are on the way"),
    "help_hint": N_("Staff: enter your PIN"),
    "enter_pin": N_("Enter your staff PIN"),
    "ok": N_("OK"),
    "clear": N_("Clear"),
    "staff_menu": N_("Staff menu"),
    "return_items": N_("Return (scan receipt)"),
    "void_sale": N_("Post-void"),
    "cycle_count": N_("Cycle count"),
    "receiving": N_("Receiving"),
    "kit_assembly": N_("Kit assembly"),
    "reprint": N_("Reprint"),
    "end_of_day": N_("End of day"),
    "diagnostics": N_("Diagnostics"),
    "log_out": N_("Log out"),
    "finish": N_("Finish"),
    "scan_receipt": N_("Scan the receipt barcode, then the items coming back"),
    "scan_shelf": N_("Scan every item on the shelf"),
    "scan_delivery": N_("Scan every item or case delivered"),
    # the quantity pad (counts, receiving, staffed tills) and the count/receiving lists
    "quantity": N_("Quantity"),
    "weight_kg": N_("Weight in kg"),
    "scan_or_pick": N_("Scan an item or tap a line"),
    "next_scan": N_("Next scan: how many?"),
    "pad_hint": N_("After a scan, type the quantity on the pad and press OK"),
    "blind_count": N_("Blind count: type what is on the shelf"),
    "item": N_("Item"),
    "counted": N_("Counted"),
    "expected": N_("Expected"),
    "difference": N_("Difference"),
    "received": N_("Received"),
    "remove_line": N_("Remove line"),
    "kit_sku": N_("Kit SKU"),
    "build": N_("Build"),
    "receipt_number": N_("Receipt number"),
    "search": N_("Search"),
    "demo_scanner": N_("Demo scanner: type or paste a barcode, then Enter"),
    "demo_sheet": N_("Demo barcodes"),
    "offline": N_("Offline: sales are kept and sent when the shop network is back"),
    "online": N_("Shop stock live"),
    "print_test": N_("Print test"),
    "drawer_test": N_("Drawer test"),
    "version": N_("Version"),
    "device": N_("Device"),
    "broker": N_("Broker"),
    "outbox": N_("Outbox"),
    "printer": N_("Printer"),
    "scanner": N_("Last scan"),
    "drawer_opened": N_("Cash drawer opened"),
    "high_contrast": N_("High contrast"),
    "storage_full": N_("Storage full: sales cannot be recorded. Free space on the data partition."),
    # the card terminal (ZVT): what it asks of the customer, in the shop's language
    "card_terminal_follow": N_("Press Card, then follow the card terminal"),
    "terminal_follow": N_("Follow the card terminal"),
    "terminal_insert_card": N_("Insert, tap or swipe your card"),
    "terminal_pin": N_("Enter your PIN on the card terminal"),
    "terminal_wait": N_("Please wait"),
    "terminal_processing": N_("Processing, please wait"),
    "terminal_remove_card": N_("Please remove your card"),
    "terminal_approved": N_("Card payment approved"),
    "terminal_declined": N_("Card payment declined"),
    "terminal_not_accepted": N_("This card is not accepted"),
    "terminal_wrong_pin": N_("Wrong PIN"),
    "terminal_aborted": N_("Card payment cancelled"),
    "terminal_failed": N_("The card terminal is not available"),
    "terminal_unknown": N_("Checking the card payment, please wait"),
    "payment_terminal": N_("Card terminal"),
    # the staff menu's card payments view: what the terminal left unsettled
    "card_payments": N_("Card payments"),
    "no_unsettled": N_("No unsettled card payments"),
    "ask_terminal": N_("Ask the terminal"),
    "resolve_by_hand": N_("Resolve by hand"),
    "resolve_prompt": N_("Payment number, then what was done (e.g. 12 refunded at the terminal)"),
    "refund_in_cash": N_("Refund in cash"),
    "retry_refund": N_("Retry card refund"),
}


class StringsError(Exception):
    """A strings file that cannot be used; the message says which key or line."""


Overrides = dict[str | None, dict[str, str]]  # language (None: the shop's) -> key -> text


def load_overrides(path: Path | None = None) -> Overrides:
    """The `[ui] strings` file: {None: the shop language's overrides, "fr": ...}."""
    if path is None:
        return {}
    try:
        data = tomllib.loads(textfile.read_text(path))
    except textfile.TextFileError as exc:
        raise StringsError(str(exc)) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise StringsError(f"{path}: {exc}") from None
    except RecursionError:
        raise StringsError(f"{path}: not valid TOML: nested too deeply") from None
    overrides: Overrides = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in DEFAULTS:
            if key not in i18n.catalog_languages():
                known = ", ".join(i18n.catalog_languages())
                raise StringsError(f"{path}: [{key}]: no catalog for this language ({known})")
            overrides[key] = _checked(path, value, f"{key}.")
        else:
            overrides.setdefault(None, {}).update(_checked(path, {key: value}))
    return overrides


def _checked(path: Path, table: dict, prefix: str = "") -> dict[str, str]:
    for key, value in table.items():
        if key not in DEFAULTS:
            raise StringsError(f"{path}: {prefix}{key}: unknown string")
        if not isinstance(value, str):
            raise StringsError(f"{path}: {prefix}{key}: must be text")
    return dict(table)


def for_language(language: str, overrides: Overrides | None = None, shop: str = "") -> dict:
    """Every screen string in `language`, with the shop's overrides for it on top
    (top-level overrides belong to the shop's language `shop`)."""
    tr = i18n.translator(language)
    strings = {key: tr.gettext(msgid) for key, msgid in DEFAULTS.items()}
    overrides = overrides or {}
    if language == (shop or i18n.SOURCE_LANGUAGE):
        strings.update(overrides.get(None, {}))
    strings.update(overrides.get(language, {}))
    return strings


def load(path: Path | None = None, language: str = i18n.SOURCE_LANGUAGE) -> dict[str, str]:
    """The screen strings of the shop's language with the file's overrides (checks the file)."""
    return for_language(language, load_overrides(path), language)
