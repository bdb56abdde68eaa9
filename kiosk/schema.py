"""TOML data -> frozen msgspec Structs, every problem named by its key.

Used by the config (kiosk.config, with [update] from kiosk.update.settings) and the
provisioning site file. msgspec checks each value against its field's type and
`msgspec.Meta` bounds in C (ints and floats strict: no text, no true for a number).
This module walks the tables around it, so that:

- every problem is reported, each with its full key (`mqtt.port`, `barcodes.
  variable_measure.0.prefix`, `money.tax_rates.A`), not only the first;
- text (and paths) lose their outer whitespace, as the settings always did, unless
  the Struct says `strip_text = False` (a Wi-Fi passphrase keeps its spaces);
- a field's own checks run on what a file gives: `Before` on the raw TOML value (a
  float into an exact Decimal), `After` on the typed one (a keymap xkb-data knows).
  Checks across fields are the Struct's `__post_init__`, run whenever one is built.

Building a Struct in code (`Config()`, `.replace(...)`) runs `__post_init__` only: the
field checks are for input, and defaults are right by construction.
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Callable
from pathlib import Path
from typing import (
    Annotated,
    Any,
    ClassVar,
    Literal,
    NamedTuple,
    Self,
    TypeVar,
    Union,
    get_args,
    get_origin,
)

import msgspec

# What text is stripped of: Unicode White_Space (str.strip() would also take \x1c-\x1f).
WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)
S = TypeVar("S", bound=msgspec.Struct)
_BAD = object()  # a value that could not be converted; its problem is already listed


class Before(NamedTuple):
    """In `Annotated[...]`: `convert(raw)` makes the TOML value what the type wants."""

    convert: Callable[[Any], Any]


class After(NamedTuple):
    """In `Annotated[...]`: `check(value)` checks (or normalises) the typed value."""

    check: Callable[[Any], Any]


class Problem(NamedTuple):
    loc: tuple[str, ...]
    reason: str

    @property
    def key(self) -> str:
        return ".".join(self.loc) or "(top level)"


class Invalid(ValueError):
    """The data does not fit: `problems` in the order of the file."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(f"{p.key}: {p.reason}" for p in problems))
        self.problems = problems


class Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A table of settings: frozen, unknown keys refused."""

    strip_text: ClassVar[bool] = True  # drop the whitespace around text values
    internal: ClassVar[frozenset[str]] = frozenset()  # fields set by code, not by a file

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (`__post_init__` checks it again)."""
        return msgspec.structs.replace(self, **changes)


def convert(data: Any, cls: type[S]) -> S:
    """`data` (from tomllib) as a `cls`; `Invalid` lists every problem."""
    problems: list[Problem] = []
    result = _struct(data, cls, (), problems)
    if problems:
        raise Invalid(problems)
    return result


def to_builtins(struct: msgspec.Struct) -> dict[str, Any]:
    """Plain data (Decimal and Path as text), as JSON or a display shows it."""
    return msgspec.to_builtins(struct, enc_hook=str)


def lax_bool(value: Any) -> Any:
    """A TOML boolean, or what settings files always got away with: "yes", "off", 1, 0."""
    if isinstance(value, str):
        if value.lower() in ("1", "on", "t", "true", "y", "yes"):
            return True
        if value.lower() in ("0", "off", "f", "false", "n", "no"):
            return False
        raise ValueError(f"must be true or false, not {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    return value  # msgspec says what it is instead


def lax_int(value: Any) -> Any:
    """A whole number also written as text ("1883") or a float (1883.0): the site file's
    ports always accepted these."""
    if isinstance(value, bool):
        return int(value)
    number = value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"must be a whole number, not {value!r}") from None
    if isinstance(number, float):
        if not number.is_integer():
            raise ValueError(f"must be a whole number, not {value!r}")
        return int(number)
    return value


@functools.cache
def _fields(cls: type[msgspec.Struct]) -> dict[str, msgspec.structs.FieldInfo]:
    return {field.name: field for field in msgspec.structs.fields(cls)}


def _struct(data: Any, cls: type, loc: tuple[str, ...], problems: list[Problem]) -> Any:
    if not isinstance(data, dict):
        problems.append(Problem(loc, f"must be a table, not {_kind(data)}"))
        return _BAD
    fields = _fields(cls)
    found = len(problems)
    values = {}
    for key, raw in data.items():
        field = fields.get(key)
        if field is None or key in getattr(cls, "internal", ()):
            problems.append(Problem((*loc, key), "unknown key"))
            continue
        value = _value(raw, field.type, (*loc, key), problems, getattr(cls, "strip_text", True))
        if value is not _BAD:
            values[key] = value
    for name, field in fields.items():
        if field.required and name not in data:
            problems.append(Problem((*loc, name), "missing (required)"))
    if len(problems) > found:
        return _BAD
    try:
        return cls(**values)
    except ValueError as exc:  # __post_init__: a check across fields
        problems.append(Problem(loc, str(exc)))
        return _BAD


@functools.cache
def _parts(tp: Any) -> tuple[Any, tuple[Before, ...], tuple[After, ...]]:
    """(the core type, its Before hooks, its After hooks) of a field's annotation,
    looking through Annotated and `X | None`."""
    befores: list[Before] = []
    afters: list[After] = []
    while True:
        if get_origin(tp) is Annotated:
            tp, *extras = get_args(tp)
            befores += [extra for extra in extras if isinstance(extra, Before)]
            afters += [extra for extra in extras if isinstance(extra, After)]
        elif get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp):
            (tp,) = [arg for arg in get_args(tp) if arg is not type(None)]
        else:
            return tp, tuple(befores), tuple(afters)


def _value(raw: Any, tp: Any, loc: tuple[str, ...], problems: list[Problem], strip: bool) -> Any:
    core, befores, afters = _parts(tp)
    raw = _steps([before.convert for before in befores], raw, loc, problems)
    if raw is _BAD:
        return _BAD
    if isinstance(core, type) and issubclass(core, msgspec.Struct):
        value = _struct(raw, core, loc, problems)
    else:
        raw = _contents(raw, core, loc, problems, strip)
        if raw is _BAD:
            return _BAD
        try:
            value = msgspec.convert(raw, tp)
        except msgspec.ValidationError as exc:
            problems.append(_from_msgspec(loc, str(exc), core, raw))
            return _BAD
    if value is _BAD:
        return _BAD
    return _steps([after.check for after in afters], value, loc, problems)


def _steps(steps: list[Callable[[Any], Any]], value: Any, loc, problems: list[Problem]) -> Any:
    """`value` through a field's own checks in turn; the first refusal is its problem."""
    try:
        for step in steps:
            value = step(value)
    except ValueError as exc:
        problems.append(Problem(loc, str(exc)))
        return _BAD
    return value


def _contents(raw: Any, core: Any, loc: tuple[str, ...], problems: list[Problem], strip: bool):
    """A list's items and a table's values converted one by one (each named by its
    index or key); text stripped, a path made a Path."""
    origin = get_origin(core)
    if origin is list and isinstance(raw, list):
        (item,) = get_args(core)
        found = len(problems)
        items = [_value(x, item, (*loc, str(i)), problems, strip) for i, x in enumerate(raw)]
        return _BAD if len(problems) > found else items
    if origin is dict and isinstance(raw, dict):
        key_type, item = get_args(core)
        found = len(problems)
        table = {
            _text(key, key_type, strip): _value(x, item, (*loc, key), problems, strip)
            for key, x in raw.items()
        }
        return _BAD if len(problems) > found else table
    return _text(raw, core, strip)


def _text(raw: Any, core: Any, strip: bool) -> Any:
    if not isinstance(raw, str) or core not in (str, Path):
        return raw
    text = raw.strip(WHITESPACE) if strip else raw
    return Path(text) if core is Path else text


_EXPECTED = {
    "int": "a whole number",
    "float": "a number",
    "decimal": "a number",
    "bool": "true or false",
    "str": "text",
    "Path": "a path (text)",
    "object": "a table",
    "array": "a list",
}
_GIVEN = {
    "int": "a whole number",
    "float": "a decimal number",
    "bool": "true/false",
    "str": "text",
    "object": "a table",
    "array": "a list",
    "datetime": "a date and time",
    "date": "a date",
    "time": "a time",
}
_BOUND = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}


def _from_msgspec(loc: tuple[str, ...], message: str, core: Any, raw: Any) -> Problem:
    """msgspec's ValidationError in the settings' own words, the bound kept."""
    message, _, where = message.partition(" - at `$")
    loc = (*loc, *(a or b for a, b in re.findall(r"\[(\d+|\.\.\.)\]|\.(\w+)", where)))
    if get_origin(core) is Literal:
        shown = f", not {raw!r}" if isinstance(raw, str) else ""
        return Problem(loc, f"must be {_either(get_args(core))}{shown}")
    if found := re.fullmatch(r"Expected `(.+?)`, got `(.+?)`", message):
        return Problem(loc, f"must be {_expected(found[1])}, not {_kind_named(found[2])}")
    if found := re.fullmatch(r"Expected `(\w+)` (>=|<=|>|<) (\S+)", message):
        number = found[3].removesuffix(".0")
        return Problem(loc, f"must be {_BOUND[found[2]]} {number}")
    if found := re.fullmatch(r"Expected `str` matching regex (.*)", message):
        return Problem(loc, f"must match the pattern {found[1]}")
    if found := re.fullmatch(r"Expected `(\w+)` of length (>=|<=) (\d+)", message):
        if found[2] == ">=" and found[3] == "1":
            return Problem(loc, "must not be empty")
        unit = {"str": "characters", "array": "items", "object": "keys"}.get(found[1], "")
        return Problem(loc, f"must have {_BOUND[found[2]]} {found[3]} {unit}".rstrip())
    return Problem(loc, message)


def _expected(names: str) -> str:
    kinds = [_EXPECTED.get(name, name) for name in names.split(" | ") if name != "null"]
    return " or ".join(kinds)


def _kind_named(name: str) -> str:
    return _GIVEN.get(name, name)


def _kind(value: Any) -> str:
    kinds = {bool: "bool", int: "int", float: "float", str: "str", list: "array", dict: "object"}
    name = kinds.get(type(value))
    return _kind_named(name or type(value).__name__)


def _either(choices: tuple[Any, ...]) -> str:
    shown = [repr(choice) for choice in choices]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
