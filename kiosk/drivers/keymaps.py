"""Keyboard layouts a wedge scanner may type in: whatever this machine's xkb-data has.

A scanner's layout is written the way xkb itself writes a layout with a variant:
`"de"`, `"de(nodeadkeys)"`, `"us(dvorak)"`, `"ch(fr)"`. The names are checked against
the xkb-data registry (`rules/evdev.xml` and `rules/evdev.extras.xml` under
`XKB_CONFIG_ROOT`, default /usr/share/X11/xkb), the same files libxkbcommon compiles
the keymap from, so a name accepted here is one the scanner driver can build.
`localectl list-x11-keymap-layouts` and `localectl list-x11-keymap-variants de` list
them. The old spelling `uk` still means xkb's `gb`.

Only the standard library: the config module imports this while it validates.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

DEFAULT_ROOT = "/usr/share/X11/xkb"
ALIASES = {"uk": "gb"}  # the names this kiosk accepted before xkb-data was asked
REGISTRIES = ("evdev.xml", "evdev.extras.xml")
_KEYMAP = re.compile(r"([a-z][a-z0-9_-]{0,31})(?:\(([A-Za-z0-9][A-Za-z0-9_-]{0,63})\))?")
LIST_HINT = "`localectl list-x11-keymap-layouts` lists them"


class KeymapError(ValueError):
    """A layout or variant xkb-data does not have (or no xkb-data); one line."""


def xkb_root() -> Path:
    return Path(os.environ.get("XKB_CONFIG_ROOT") or DEFAULT_ROOT)


@functools.cache
def _registry(root: Path) -> dict[str, frozenset[str]]:
    layouts: dict[str, set[str]] = {}
    for name in REGISTRIES:
        path = root / "rules" / name
        if not path.is_file():
            continue
        try:
            tree = ElementTree.parse(path).getroot()
        except (OSError, ElementTree.ParseError) as exc:
            raise KeymapError(f"cannot read xkb-data's {path}: {exc}") from None
        for layout in tree.iterfind("layoutList/layout"):
            variants = layouts.setdefault(layout.findtext("configItem/name", ""), set())
            names = layout.iterfind("variantList/variant/configItem/name")
            variants.update(name.text or "" for name in names)
    layouts.pop("", None)
    if not layouts:
        raise KeymapError(
            f"no keyboard layouts in {root}/rules (install xkb-data, or set XKB_CONFIG_ROOT)"
        )
    return {layout: frozenset(variants - {""}) for layout, variants in layouts.items()}


def layouts() -> dict[str, frozenset[str]]:
    """Every layout xkb-data has, with its variants."""
    return _registry(xkb_root())


def split(text: str) -> tuple[str, str]:
    """ "de(nodeadkeys)" -> ("de", "nodeadkeys"); "uk" -> ("gb", ""). Syntax only."""
    match = _KEYMAP.fullmatch(text.strip())
    if match is None:
        raise KeymapError(
            f'keymap {text!r} is not a layout name like "de" or "de(nodeadkeys)"; {LIST_HINT}'
        )
    layout, variant = match.groups()
    return ALIASES.get(layout, layout), variant or ""


def _closest(name: str, names) -> str:
    close = difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.6)
    return f" (closest: {', '.join(close)})" if close else ""


def check(text: str) -> tuple[str, str]:
    """The xkb (layout, variant) for a configured keymap, or a one-line KeymapError
    naming what xkb-data does not have and how to list what it has."""
    layout, variant = split(text)
    known = layouts()
    if layout not in known:
        raise KeymapError(
            f"keyboard layout {layout!r} is not in xkb-data{_closest(layout, known)}; {LIST_HINT}"
        )
    if variant and variant not in known[layout]:
        raise KeymapError(
            f"layout {layout!r} has no variant {variant!r} in xkb-data"
            f"{_closest(variant, known[layout])}; "
            f"`localectl list-x11-keymap-variants {layout}` lists them"
        )
    return layout, variant
