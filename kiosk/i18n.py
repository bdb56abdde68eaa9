"""Languages: the one place that knows gettext catalogs and Babel's locale formats.

Every word a customer, staff member or technician reads comes from the gettext
catalogs in kiosk/locale/<lang>/LC_MESSAGES/kiosk.po (English is the source
language: its msgids are the English text). Two languages are in use at the same
time on one kiosk: the customer's screen language (switched on the attract screen)
and the shop's language (`[ui] language`: receipts, labels, reports). So nothing
here installs a global `_`; each caller asks for the translations of the locale it
renders for (`translator(locale)`), and text made before its reader is known (the
checkout's messages) is a `Message` rendered later with `render(message, locale)`.

Markers, all understood by `pybabel extract` (see babel.cfg):

- `N_("text")` marks a constant (a dict of labels, a table of codes); it returns the
  English text unchanged, translated where it is shown: `translator(locale).gettext(x)`.
- `_("Item {name} is not for sale", name=...)` makes a lazy `Message` with its
  arguments; `_n(singular, plural, n, ...)` the plural form. Arguments may be other
  Messages or locale-formatted values (`Money`, `Quantity`, `Weight`, `Day`), each
  rendered in the reader's locale.

Compiled catalogs (.mo) are built from the .po files, never committed: at install
(`pybabel compile -d kiosk/locale -D kiosk`, run by dev.sh) and, when a .mo is
missing or older than its .po (a read-only root file system on the device, a
checkout without the compile step), on first use into the user's cache folder
(`$KIOSK_LOCALE_CACHE`, default `<user cache>/kiosk/locale`, named by the .po's
hash); if that cannot be written either, the catalog is compiled in memory.
"""

from __future__ import annotations

import gettext as _gettext
import hashlib
import io
import logging
import os
import string
import threading
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DOMAIN = "kiosk"
SOURCE_LANGUAGE = "en"
LOCALE_DIR = Path(__file__).with_name("locale")
CACHE_ENV = "KIOSK_LOCALE_CACHE"
_lock = threading.Lock()


# ---------------------------------------------------------------- markers


def N_(msgid: str) -> str:  # noqa: N802 - gettext's conventional marker name
    """Marks a constant for extraction; translated where it is shown."""
    return msgid


class Message(str):
    """A translatable message with its arguments, rendered in the reader's locale.

    It IS its English text (a str subclass): logs, the ledger's records, replay
    transcripts, JSON and every test that compares or searches text see the English,
    unchanged; a screen calls `render(message, locale)` for its reader's language."""

    msgid: str
    args: tuple[tuple[str, Any], ...]
    plural: str | None
    n: int | None

    def __new__(
        cls,
        msgid: str,
        args: tuple[tuple[str, Any], ...] = (),
        plural: str | None = None,
        n: int | None = None,
    ) -> Message:
        english = _format(msgid, plural, n, args, SOURCE_LANGUAGE, None)
        message = super().__new__(cls, english)
        message.msgid, message.args, message.plural, message.n = msgid, args, plural, n
        return message

    def render(self, locale: str) -> str:
        return _format(self.msgid, self.plural, self.n, self.args, locale, translator(locale))

    def sentence(self) -> Sentence:
        """This message shown as a sentence: its first letter upper-case, in every
        language (an exception's "unknown item X" read as "Unknown item X")."""
        return Sentence(self.msgid, self.args, self.plural, self.n)

    def __reduce__(self):  # pickles (a worker's queue) as a Message, not as a plain str
        return (type(self), (self.msgid, self.args, self.plural, self.n))


class Sentence(Message):
    """A Message whose first letter is upper-case once rendered, in every language."""

    def __new__(cls, msgid, args=(), plural=None, n=None) -> Sentence:
        english = upper_first(_format(msgid, plural, n, args, SOURCE_LANGUAGE, None))
        message = str.__new__(cls, english)
        message.msgid, message.args, message.plural, message.n = msgid, args, plural, n
        return message

    def render(self, locale: str) -> str:
        return upper_first(super().render(locale))


def text_of(exc: BaseException) -> str:
    """An exception's text: its Message when it was raised with one, else `str(exc)`."""
    text = message_of(exc)
    return text if isinstance(text, Message) else str(exc)


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def message_of(value: Any) -> Any:
    """An exception's text as its Message when it was raised with one (`str(exc)` is
    the English), else the value itself."""
    if (
        isinstance(value, BaseException)
        and value.args
        and isinstance(value.args[0], Message)
        and str(value) == value.args[0]
    ):
        return value.args[0]
    return value


def _format(msgid, plural, n, args, locale: str, tr) -> str:
    if tr is None:
        text = msgid if plural is None or n == 1 else plural
    elif plural is not None:
        text = tr.ngettext(msgid, plural, n or 0)
    else:
        text = tr.gettext(msgid)
    raw = _repr_fields(text)  # `{code!r}` of a plain value: its own repr, as an f-string
    values = {
        key: value if key in raw and _plain(value) else localize(value, locale)
        for key, value in args
    }
    if plural is not None:
        values.setdefault("n", localize(Quantity(n or 0), locale))
    try:
        return text.format(**values)
    except (KeyError, IndexError, ValueError):  # a broken translation: the English
        log.warning("translation of %r for %s does not format", msgid, locale)
        return (plural if plural and n != 1 else msgid).format(**values)


def _repr_fields(text: str) -> set[str]:
    try:
        return {f for _l, f, _s, conv in string.Formatter().parse(text) if f and conv == "r"}
    except ValueError:
        return set()


def _plain(value: Any) -> bool:
    value = message_of(value)
    return not isinstance(value, Message) and not hasattr(value, "localize")


def _(msgid: str, **args: Any) -> Message:
    """A lazy message: `_("Item {sku} not found", sku=code)`, rendered by the screen."""
    return Message(msgid, tuple(args.items()))


def _n(singular: str, plural: str, n: int, **args: Any) -> Message:
    """A lazy plural message; `{n}` is the count, formatted for the locale."""
    return Message(singular, tuple(args.items()), plural, n)


# ---------------------------------------------------------------- values formatted per locale


def _babel_text(text: str) -> str:
    # CLDR's narrow no-break space (fr "1 234,50") is missing from common screen and
    # printer fonts; a plain no-break space keeps the number together the same way.
    return text.replace("\u202f", "\xa0")


# Babel takes ~70 us to format one number; the cart screen formats every line's
# quantity and amount at each scan, mostly the same few values. The formatters are pure
# (CLDR data is fixed), so their results are kept, keyed by the value's text.
_memo = lru_cache(maxsize=4096)


def format_money(amount: Decimal | str | int, currency: str, locale: str) -> str:
    """An amount with its currency sign, as the locale writes it: `1,49 €` (de),
    `€1.49` (en), `1,49 €` (fr). The space before € is a no-break space."""
    return _money(str(amount), currency, locale)


@_memo
def _money(amount: str, currency: str, locale: str) -> str:
    from babel.numbers import format_currency  # noqa: PLC0415

    return _babel_text(format_currency(Decimal(amount), currency, locale=_babel(locale)))


def format_amount(amount: Decimal | str | int, currency: str, locale: str) -> str:
    """An amount in the currency's minor unit without its sign (receipt columns):
    `1.234,50` (de), `1,234.50` (en)."""
    from babel.numbers import format_decimal, get_currency_precision  # noqa: PLC0415

    digits = get_currency_precision(currency)
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    value = Decimal(str(amount))
    return _babel_text(format_decimal(value, pattern, locale=_babel(locale)))


def format_money_code(amount: Decimal | str | int, currency: str, locale: str) -> str:
    """An amount with the currency's ISO code after it, for reports' columns:
    `1.234,50 EUR` (de), `1,234.50 EUR` (en)."""
    return f"{format_amount(amount, currency, locale)} {currency}"


def format_number(value: Decimal | int | str, locale: str) -> str:
    """A quantity or a rate as the locale writes it, every given digit kept: `0,532`."""
    return _number(str(value), locale)


@_memo
def _number(text: str, locale: str) -> str:
    from babel.numbers import format_decimal  # noqa: PLC0415

    value = Decimal(text)
    if value == value.to_integral_value():
        value = value.quantize(Decimal(1))
    return _babel_text(format_decimal(value, locale=_babel(locale), decimal_quantization=False))


def format_percent(rate: Decimal | str, locale: str) -> str:
    """A rate (0.19) as a percentage: `19%` (en), `19 %` (de), `7,5 %`."""
    from babel.numbers import format_percent as babel_percent  # noqa: PLC0415

    value = Decimal(str(rate))
    return _babel_text(babel_percent(value, locale=_babel(locale), decimal_quantization=False))


def format_weight(kg: Decimal | str, locale: str) -> str:
    """A weight in kilograms with its unit: `0,532 kg` (a no-break space)."""
    return _weight(str(kg), locale)


@_memo
def _weight(text: str, locale: str) -> str:
    from babel.units import format_unit  # noqa: PLC0415

    value = Decimal(text)
    text = format_unit(
        format_number(value, locale), "mass-kilogram", "short", locale=_babel(locale)
    )
    return _babel_text(text).replace(" ", "\xa0")  # the number stays with its unit


def format_date(day: date, locale: str) -> str:
    from babel.dates import format_date as babel_date  # noqa: PLC0415

    return babel_date(day, "medium", locale=_babel(locale))


def format_datetime(moment: datetime, locale: str) -> str:
    """Date and time for a receipt, in the moment's own time zone: `23.11.2026, 14:05`."""
    from babel.dates import format_date as babel_date  # noqa: PLC0415
    from babel.dates import format_time  # noqa: PLC0415

    day = babel_date(moment, "medium", locale=_babel(locale))
    return f"{day} {format_time(moment, 'short', tzinfo=moment.tzinfo, locale=_babel(locale))}"


@dataclass(frozen=True)
class Money:
    """An amount shown in the reader's locale. `english`, when given, is how the source
    text writes it (the checkout's "1,234.50 EUR"), kept as is for English readers."""

    amount: Decimal
    currency: str
    english: str | None = None

    def localize(self, locale: str) -> str:
        if self.english is not None and is_source(locale):
            return self.english
        return format_money(self.amount, self.currency, locale)


@dataclass(frozen=True)
class Quantity:
    value: Decimal | int

    def localize(self, locale: str) -> str:
        return format_number(self.value, locale)


@dataclass(frozen=True)
class Weight:
    """A weight in kg; `english`, when given, is the source text's own writing ("0.532 kg")."""

    kg: Decimal
    english: str | None = None

    def localize(self, locale: str) -> str:
        if self.english is not None and is_source(locale):
            return self.english
        return format_weight(self.kg, locale)


@dataclass(frozen=True)
class Day:
    value: date

    def localize(self, locale: str) -> str:
        if isinstance(self.value, datetime):
            return format_datetime(self.value, locale)
        return format_date(self.value, locale)


@dataclass(frozen=True)
class Joined:
    """Several values in one placeholder ("a; b"), each in the reader's language."""

    items: tuple
    separator: str = ", "

    def localize(self, locale: str) -> str:
        return self.separator.join(localize(item, locale) for item in self.items)


def localize(value: Any, locale: str) -> str:
    """Any argument of a message, as its reader reads it. A bare int or Decimal keeps
    the English text's own writing (`str(value)`, as the f-string it replaced wrote it)
    and is formatted for other locales; `Quantity(value)` groups English digits too.
    An exception raised with a Message renders that Message."""
    value = message_of(value)
    if isinstance(value, Message):
        return value.render(locale)
    if hasattr(value, "localize"):
        return value.localize(locale)
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return str(value) if is_source(locale) else format_number(value, locale)
    return str(value)


def is_source(locale: str | None) -> bool:
    """Is this locale the source language (English: `en`, `en_GB`)?"""
    return _babel(locale or SOURCE_LANGUAGE).split("_")[0] == SOURCE_LANGUAGE


def render(text: Message | str | None, locale: str) -> str:
    """A checkout message for the screen: a Message in this locale; plain text (the
    checkout's messages not yet made Messages) translated when the catalog has it."""
    if text is None:
        return ""
    if isinstance(text, Message):
        return text.render(locale)
    return translator(locale).gettext(text) if text else ""


# ---------------------------------------------------------------- catalogs


def _babel(locale: str) -> str:
    return (locale or SOURCE_LANGUAGE).replace("-", "_")


def catalog_languages() -> tuple[str, ...]:
    """English (the source) and every language with a catalog in kiosk/locale."""
    found = sorted(
        p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po") if p.is_file()
    )
    return (SOURCE_LANGUAGE, *[lang for lang in found if lang != SOURCE_LANGUAGE])


def user_language(shop_language: str | None = None) -> str:
    """The language of the person at a terminal (the command line): $KIOSK_LANGUAGE,
    else gettext's own environment (LANGUAGE, LC_ALL, LC_MESSAGES, LANG), else the
    shop's language, else English; only languages with a catalog (`de_AT` -> `de`)."""
    from babel.core import default_locale  # noqa: PLC0415

    have = catalog_languages()
    wanted = [os.environ.get("KIOSK_LANGUAGE", "")]
    for part in os.environ.get("LANGUAGE", "").split(":"):
        wanted.append(part)
    system = default_locale(("LC_ALL", "LC_MESSAGES", "LANG"))
    if system and not system.endswith("POSIX"):
        wanted.append(system)
    wanted.append(shop_language or "")
    for candidate in wanted:
        candidate = _babel(candidate.split(".")[0]) if candidate else ""
        for code in (candidate, candidate.split("_")[0]):
            if code in have:
                return code
    return SOURCE_LANGUAGE


def language_name(language: str) -> str:
    """The language's name in itself, for the attract screen's switch: `Deutsch`."""
    from babel import Locale  # noqa: PLC0415

    name = Locale.parse(_babel(language)).get_display_name(_babel(language)) or language
    return name[:1].upper() + name[1:]


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    import platformdirs  # noqa: PLC0415

    return Path(platformdirs.user_cache_dir("kiosk")) / "locale"


def compile_po(po: Path) -> bytes:
    """A .po file as .mo bytes (fuzzy entries left out, as msgfmt does)."""
    from babel.messages.mofile import write_mo  # noqa: PLC0415
    from babel.messages.pofile import read_po  # noqa: PLC0415

    with po.open("rb") as fh:
        catalog = read_po(fh, locale=po.parent.parent.name, domain=DOMAIN)
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def _mo_bytes(po: Path) -> bytes:
    mo = po.with_suffix(".mo")
    try:
        if mo.stat().st_mtime >= po.stat().st_mtime:  # built at install, still current
            return mo.read_bytes()
    except OSError:
        pass
    source = po.read_bytes()
    cached = cache_dir() / f"{po.parent.parent.name}-{hashlib.sha256(source).hexdigest()[:16]}.mo"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    data = compile_po(po)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(cached)
    except OSError as exc:  # a read-only home: compiled in memory each start, still works
        log.info("language catalog %s compiled in memory (%s)", po, exc)
    return data


class _Catalog(_gettext.GNUTranslations):
    """gettext("") is a catalog's header; a blank line of shop text stays blank."""

    def gettext(self, message: str) -> str:
        return super().gettext(message) if message else message


@lru_cache(maxsize=32)
def translator(locale: str | None) -> _gettext.NullTranslations:
    """The translations of one locale (`de`, `de_AT` falls back to `de`); English and
    unknown locales give the source text."""
    locale = _babel(locale or SOURCE_LANGUAGE)
    for candidate in (locale, locale.split("_")[0]):
        po = LOCALE_DIR / candidate / "LC_MESSAGES" / f"{DOMAIN}.po"
        if candidate != SOURCE_LANGUAGE and po.is_file():
            with _lock:
                data = _mo_bytes(po)
            return _Catalog(io.BytesIO(data))
    return _gettext.NullTranslations()


def gettext(locale: str | None, msgid: str) -> str:
    return translator(locale).gettext(msgid)


def ngettext(locale: str | None, singular: str, plural: str, n: int) -> str:
    return translator(locale).ngettext(singular, plural, n)


def placeholders(text: str) -> set[str]:
    """The `{name}` fields of a message (what a translation must keep)."""
    try:
        return {field for _lit, field, _spec, _conv in string.Formatter().parse(text) if field}
    except ValueError:
        return {"<unbalanced braces>"}
