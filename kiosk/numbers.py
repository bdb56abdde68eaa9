"""Numbers people type: one parser with documented bounds, for every entry point.

The CLI, replay files, catalog imports, the config file and the checkout all read
user numbers through here, so `1e400`, `1_000`, Arabic-Indic digits or a weight of
`1e-400` kg are refused the same way everywhere, with one line that names what was
wrong (see README, "Numbers"). Text must be plain ASCII: an optional sign, digits,
an optional decimal point, and an optional exponent; the value must then
lie within the bounds the caller gives and have no more decimals than it allows.

The bounds below are the documented limits; the ledger enforces its own, wider
limits again (kiosk/ledger/core.py) as a second line of defence.
"""

from __future__ import annotations

import re
from decimal import Decimal

from kiosk import i18n
from kiosk.i18n import N_

MAX_MONEY = Decimal(10_000_000)  # any one price, tender, discount or float
MAX_PIECES = 9999  # pieces on one cart line
MIN_WEIGHT = Decimal("0.001")  # kg: one gram, the scale's resolution
MAX_WEIGHT = Decimal(9999)  # kg on one cart line
WEIGHT_PLACES = 3  # grams
MAX_STOCK_QTY = 1_000_000  # base units (pieces or grams) counted, received or built at once
MAX_PACK = 10_000  # pieces in a case barcode or kit component line
# A posted transaction must make a stock event the shop controller accepts
# (kiosk/mqtt/topics.py checks the same limits on the way in).
MAX_EVENT_LINES = 1_000  # SKUs moved or counted by one transaction
MAX_EVENT_BYTES = 64 * 1024  # one stock event's JSON (the broker's packet limit)
MAX_PERCENT = Decimal(100)
MAX_IDLE_S = 30 * 24 * 3600  # replay: skip ahead at most a month
MAX_LINE = 9999  # cart line numbers
MAX_TEXT = 40  # characters in a number's text
MAX_PLACES = 6  # decimals of any number, unless the caller allows fewer

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
_WHOLE = re.compile(r"[+-]?[0-9]+")


class NumberError(ValueError):
    """A number that is not one, or is out of its documented range."""


def _what(what: str) -> str:
    """The name of the number, translated where it is shown when a catalog has it
    ("quantity" -> "Menge"); callers mark their names with N_()."""
    if isinstance(what, i18n.Message) or "{" in what or "}" in what:
        return what
    return i18n.Message(what)


def _range(what: str, shown: str, minimum: object, maximum: object) -> i18n.Message:
    return i18n._(
        "{what} {value} must be from {minimum} to {maximum}",
        what=_what(what),
        value=shown,
        minimum=minimum,
        maximum=maximum,
    )


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return repr(text[:MAX_TEXT] + ("..." if len(text) > MAX_TEXT else ""))


def _decimals(value: Decimal) -> int:
    """Decimal places that matter (1.500 has 1), counted without rounding."""
    _, digits, exponent = value.as_tuple()
    digits = list(digits)
    while exponent < 0 and len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exponent += 1
    return max(0, -exponent) if any(digits) else 0


def decimal(
    value: object,
    what: str,
    *,
    minimum: Decimal | int = 0,
    maximum: Decimal | int,
    places: int = MAX_PLACES,
    floats: bool = False,
) -> Decimal:
    """A Decimal from text, an int or a Decimal (a float only when `floats`: JSON
    has no other way to write 0.5 seconds), within [minimum, maximum] and with at
    most `places` decimals."""
    if isinstance(value, bool):
        raise NumberError(
            i18n._(
                "{what} must be a number, not {value}", what=_what(what), value=str(value).lower()
            )
        )
    if isinstance(value, float):
        if not floats:
            raise NumberError(
                i18n._(
                    '{what} must be written as text, e.g. "1.50", not {value}',
                    what=_what(what),
                    value=repr(value),
                )
            )
        value = repr(value)
    if isinstance(value, int):
        if not minimum <= value <= maximum:
            raise NumberError(_range(what, _shown(value), minimum, maximum))
        result = Decimal(value)
    elif isinstance(value, Decimal):
        result = value
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_TEXT or not _NUMBER.fullmatch(text):
            raise NumberError(
                i18n._(
                    "{what} {value} is not a number (write e.g. 12 or 1.50)",
                    what=_what(what),
                    value=_shown(value),
                )
            )
        result = Decimal(text)
    else:
        raise NumberError(
            i18n._(
                "{what} must be a number, not {kind}", what=_what(what), kind=type(value).__name__
            )
        )
    if not result.is_finite():
        raise NumberError(
            i18n._("{what} {value} is not a finite number", what=_what(what), value=_shown(value))
        )
    if not minimum <= result <= maximum:
        raise NumberError(_range(what, _shown(value), minimum, maximum))
    if _decimals(result) > places:
        if places == 0:
            unit = i18n._("a whole number")
        else:
            unit = i18n._("at most {places} decimal(s)", places=places)
        raise NumberError(
            i18n._(
                "{what} {value} must have {unit}", what=_what(what), value=_shown(value), unit=unit
            )
        )
    if result == 0:
        return Decimal(0)  # not 0E-9999 or -0
    if result.as_tuple().exponent > 0:
        result = result.quantize(Decimal(1))  # 1E+2 -> 100
    return result + 0  # no negative zero


def whole(value: object, what: str, *, minimum: int = 0, maximum: int) -> int:
    """An int from an int or ASCII digit text, within [minimum, maximum]."""
    if isinstance(value, bool):
        raise NumberError(
            i18n._(
                "{what} must be a whole number, not {value}",
                what=_what(what),
                value=str(value).lower(),
            )
        )
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_TEXT or not _WHOLE.fullmatch(text):
            raise NumberError(_not_whole(what, value))
        value = int(text)
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        if abs(value) > 10**MAX_TEXT:
            raise NumberError(_range(what, _shown(str(value)), minimum, maximum))
        value = int(value)
    if not isinstance(value, int):
        raise NumberError(_not_whole(what, value))
    if not minimum <= value <= maximum:
        raise NumberError(_range(what, _shown(value), minimum, maximum))
    return value


def _not_whole(what: str, value: object) -> i18n.Message:
    return i18n._("{what} {value} is not a whole number", what=_what(what), value=_shown(value))


def money(
    value: object,
    what: str,
    unit: Decimal,
    *,
    minimum: Decimal | int = 0,
    maximum: Decimal | int = MAX_MONEY,
) -> Decimal:
    """An amount of money in the currency's minor unit (e.g. 0.01), within bounds."""
    places = max(0, -unit.as_tuple().exponent)
    return decimal(value, what, minimum=minimum, maximum=maximum, places=places)


def cart_quantity(value: object, unit: str, what: str = N_("quantity")) -> Decimal:
    """A cart line's quantity: whole pieces, or a weight in kg of at least one gram."""
    if unit == "kg":
        return decimal(value, what, minimum=MIN_WEIGHT, maximum=MAX_WEIGHT, places=WEIGHT_PLACES)
    return decimal(value, what, minimum=1, maximum=MAX_PIECES, places=0)
