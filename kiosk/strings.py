"""Every string the screens show, in one place, so a shop can translate them.

A shop overrides any of them with a TOML file named by `[ui] strings`
(`attract_title = "Scannen Sie einen Artikel"`); unknown keys are refused.
Messages from the checkout itself (what went wrong, what to do next) come from
kiosk/checkout/session.py.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from kiosk import textfile

DEFAULTS: dict[str, str] = {
    "attract_title": "Scan an item to start",
    "attract_hint": "Hold the barcode under the scanner",
    "look_up": "Look up item",
    "call_staff": "Call staff",
    "staff": "Staff",
    "pay": "Pay",
    "cancel_sale": "Cancel",
    "remove": "Remove",
    "total": "Total",
    "to_pay": "To pay",
    "cash": "Cash",
    "card": "Card",
    "exact": "Exact",
    "back": "Back",
    "card_follow": "Follow the card terminal, then type its approval code",
    "approval_code": "Approval code",
    "confirm": "Confirm",
    "paid_thanks": "Paid, thank you!",
    "change": "Change",
    "print_receipt": "Print receipt",
    "no_receipt": "No receipt",
    "help_title": "Staff are on the way",
    "help_hint": "Staff: enter your PIN",
    "enter_pin": "Enter your staff PIN",
    "ok": "OK",
    "clear": "Clear",
    "staff_menu": "Staff menu",
    "return_items": "Return (scan receipt)",
    "void_sale": "Post-void",
    "cycle_count": "Cycle count",
    "receiving": "Receiving",
    "kit_assembly": "Kit assembly",
    "reprint": "Reprint",
    "end_of_day": "End of day",
    "diagnostics": "Diagnostics",
    "log_out": "Log out",
    "finish": "Finish",
    "scan_receipt": "Scan the receipt barcode, then the items coming back",
    "scan_shelf": "Scan every item on the shelf",
    "scan_delivery": "Scan every item or case delivered",
    "kit_sku": "Kit SKU",
    "build": "Build",
    "receipt_number": "Receipt number",
    "search": "Search",
    "demo_scanner": "Demo scanner: type or paste a barcode, then Enter",
    "demo_sheet": "Demo barcodes",
    "offline": "Offline: sales are kept and sent when the shop network is back",
    "online": "Shop stock live",
    "print_test": "Print test",
    "drawer_test": "Drawer test",
    "version": "Version",
    "device": "Device",
    "broker": "Broker",
    "outbox": "Outbox",
    "printer": "Printer",
    "scanner": "Last scan",
    "drawer_opened": "Cash drawer opened",
    "high_contrast": "High contrast",
    "storage_full": "Storage full: sales cannot be recorded. Free space on the data partition.",
    # the card terminal (ZVT): what it asks of the customer, in the shop's language
    "card_terminal_follow": "Press Card, then follow the card terminal",
    "terminal_follow": "Follow the card terminal",
    "terminal_insert_card": "Insert, tap or swipe your card",
    "terminal_pin": "Enter your PIN on the card terminal",
    "terminal_wait": "Please wait",
    "terminal_processing": "Processing, please wait",
    "terminal_remove_card": "Please remove your card",
    "terminal_approved": "Card payment approved",
    "terminal_declined": "Card payment declined",
    "terminal_not_accepted": "This card is not accepted",
    "terminal_wrong_pin": "Wrong PIN",
    "terminal_aborted": "Card payment cancelled",
    "terminal_failed": "The card terminal is not available",
    "terminal_unknown": "Checking the card payment, please wait",
    "payment_terminal": "Card terminal",
    # the staff menu's card payments view: what the terminal left unsettled
    "card_payments": "Card payments",
    "no_unsettled": "No unsettled card payments",
    "ask_terminal": "Ask the terminal",
    "resolve_by_hand": "Resolve by hand",
    "resolve_prompt": "Payment number, then what was done (e.g. 12 refunded at the terminal)",
    "refund_in_cash": "Refund in cash",
    "retry_refund": "Retry card refund",
}


class StringsError(Exception):
    """A strings file that cannot be used; the message says which key or line."""


def load(path: Path | None = None) -> dict[str, str]:
    strings = dict(DEFAULTS)
    if path is None:
        return strings
    try:
        data = tomllib.loads(textfile.read_text(path))
    except textfile.TextFileError as exc:
        raise StringsError(str(exc)) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise StringsError(f"{path}: {exc}") from None
    except RecursionError:
        raise StringsError(f"{path}: not valid TOML: nested too deeply") from None
    for key, value in data.items():
        if key not in DEFAULTS:
            raise StringsError(f"{path}: {key}: unknown string")
        if not isinstance(value, str):
            raise StringsError(f"{path}: {key}: must be text")
        strings[key] = value
    return strings
