"""Documents -> a short list of print operations, laid out for the actual printer.

`Paper` is what a layout needs to know about the printer: characters per line in
font A, printable width in dots, the code pages it has and whether it prints
barcodes and bitmaps itself. It comes from python-escpos's capability profile
(`[printer] profile`), narrowed by `paper_mm` and `columns` in the config.

One layout feeds two renderers: ESC/POS bytes for the printer (printer.py) and a
PNG preview for the screens, the demo and the tests (preview.py), so the preview
shows what the paper will. Every document starts with `Init`: the printer resets
(ESC @) and selects the one code page the layout chose for this document, and
every string in the document is already transliterated to what that page holds.
"""

from __future__ import annotations

import textwrap
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from anyascii import anyascii

from kiosk import escpos_lib, i18n
from kiosk.documents import KitLabel, Receipt, TextReport
from kiosk.i18n import N_

DEFAULT_PROFILE = "default"
DEFAULT_DPI = 203
FONT_A_DOTS = 12  # font A is 12 dots wide on Epson-compatible receipt printers
# Printable width (mm) of the common paper rolls; other widths lose about 4 mm a side.
PRINTABLE_MM = {57: 48.0, 58: 48.0, 60: 52.0, 72: 64.0, 76: 64.0, 80: 72.0, 82: 72.0, 112: 104.0}
# Code pages a Western shop's text fits best first; then the profile's own order.
PREFERRED_PAGES = (
    "CP1252", "CP858", "ISO_8859-15", "CP850", "ISO_8859-1", "CP437",
    "CP1250", "CP852", "ISO_8859-2", "CP1257", "CP775", "CP1254", "CP857",
    "CP865", "CP860", "CP863", "CP861", "CP1251", "CP866", "CP855", "CP1253",
    "CP737", "CP869", "ISO_8859-7", "CP1255", "CP862", "CP1256", "CP864", "CP720",
    "CP874", "CP1258", "CP1125",
)  # fmt: skip
# Pages never chosen: multi-byte or half-width Kana ones that switch the printer's mode.
UNSAFE_PAGES = {"CP932", "KATAKANA"}


def printable_mm(paper_mm: float) -> float:
    """The width a printer can print on a roll of this width."""
    for width, printable in PRINTABLE_MM.items():
        if abs(paper_mm - width) < 1:
            return printable
    return paper_mm - 8


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and value > 0 else None


@dataclass(frozen=True)
class CodePage:
    """One ESC t table: its number in the profile, python-escpos's name, Python's codec."""

    number: int
    name: str
    codec: str

    def has(self, char: str) -> bool:
        if ord(char) < 128:
            return True
        try:
            encoded = char.encode(self.codec)
        except (UnicodeEncodeError, LookupError):
            return False
        return len(encoded) == 1 and encoded[0] >= 128


def transliterate(char: str) -> str:
    """A readable ASCII stand-in (anyascii: € -> EUR, £ -> GBP, ß -> ss, é -> e)."""
    if unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return ""  # combining marks and invisible format characters
    return anyascii(char)


@dataclass(frozen=True)
class Charset:
    """The code page chosen for one document and what it can print."""

    page: CodePage | None  # None: plain text for a terminal, everything passes

    def fit(self, text: str) -> str:
        text = "".join(" " if ord(c) < 32 or c == "\x7f" else c for c in text)
        if self.page is None:
            return text
        text = unicodedata.normalize("NFC", text)
        return "".join(c if self.page.has(c) else transliterate(c) for c in text)


@dataclass(frozen=True)
class Paper:
    """What the layout needs to know about one printer and its paper."""

    profile: str = DEFAULT_PROFILE
    columns: int = 42  # characters per line, font A
    dots: int = 576  # printable width in dots (a multiple of 8)
    dpi: int = DEFAULT_DPI
    paper_mm: float = 80
    code_pages: tuple[CodePage, ...] = ()  # usable pages, best first
    hw_barcodes: bool = True  # GS k with function B (Code 128)
    hw_ean: bool = True  # GS k function A (EAN-13)
    image_impl: str | None = "bitImageRaster"  # python-escpos's image() implementation
    cutter: bool = True
    dot_matrix: bool = False  # impact printers: 8-dot column images only

    def charset(self, texts) -> Charset:
        """The page that prints most of these strings' characters (the rest is
        transliterated). A profile without usable pages prints ASCII only."""
        if not self.code_pages:
            return Charset(CodePage(0, "CP437", "ascii")) if self.profile else Charset(None)
        wanted = {c for text in texts if text for c in unicodedata.normalize("NFC", text)}
        wanted = {c for c in wanted if ord(c) >= 128}
        # max() keeps the first of equals: ties go to the preferred page
        return Charset(max(self.code_pages, key=lambda page: sum(map(page.has, wanted))))


def text_paper(columns: int) -> Paper:
    """A terminal of this width: no code pages, no transliteration."""
    return Paper(profile="", columns=columns, code_pages=(), image_impl=None)


def profile_names() -> list[str]:
    return sorted(escpos_lib.capabilities()["profiles"], key=str.lower)


def _usable_pages(profile_data: dict) -> tuple[CodePage, ...]:
    encodings = escpos_lib.capabilities()["encodings"]
    pages: dict[str, CodePage] = {}
    for number, name in sorted(profile_data.get("codePages", {}).items(), key=lambda i: int(i[0])):
        codec = encodings.get(name, {}).get("python_encode")
        if name in UNSAFE_PAGES or not codec or name in pages:
            continue
        try:
            "a".encode(codec)
        except LookupError:
            continue
        pages[name] = CodePage(int(number), name, codec)
    rank = {name: i for i, name in enumerate(PREFERRED_PAGES)}
    ordered = sorted(pages.values(), key=lambda p: (rank.get(p.name, len(rank)), p.number))
    return tuple(ordered)


@lru_cache(maxsize=64)
def paper_for(
    profile: str = DEFAULT_PROFILE, paper_mm: float | None = None, columns: int | None = None
) -> Paper:
    """The printer's geometry from its python-escpos profile.

    The profile gives the print head's width (dots, dpi) and font A's columns; a
    narrower `paper_mm` scales both down (a TM-T20II with its 58 mm guide prints
    32 columns on 384 dots); a profile without a width (`default`) gets the
    paper's printable width at its dpi, at most its own columns. `columns`
    overrides the count for printers whose font differs from their profile.
    """
    if profile not in escpos_lib.capabilities()["profiles"]:
        raise ValueError(f"unknown printer profile {profile!r}")
    escpos_profile = escpos_lib.get_profile(profile)
    data = escpos_profile.profile_data
    media = data.get("media", {})
    width = media.get("width", {})
    dpi = _number(media.get("dpi"))
    pixels = _number(width.get("pixels"))
    mm = _number(width.get("mm"))
    profile_columns = escpos_profile.get_columns("a")
    features = data.get("features", {})
    if pixels:
        if dpi:
            head_mm = pixels * 25.4 / dpi
        elif mm and any(abs(mm - roll) < 1 for roll in PRINTABLE_MM):
            head_mm = printable_mm(mm)  # the profile gave the roll, not the print width
        else:
            head_mm = mm or pixels * 25.4 / DEFAULT_DPI
        head_mm = round(head_mm)  # 72.07 and 72.25 mm heads are both "72 mm"
        used_mm = head_mm if paper_mm is None else min(head_mm, printable_mm(paper_mm))
        scale = used_mm / head_mm
        dots = int(pixels * scale) // 8 * 8
        cols = int(profile_columns * scale + 1e-6)
        paper = paper_mm or (mm if mm and mm > head_mm else round(head_mm + 8))
        dpi_used = round(dpi or pixels * 25.4 / head_mm)
    else:
        dpi_used = round(dpi or DEFAULT_DPI)
        paper = paper_mm or (mm if mm else 80)
        dots = round(printable_mm(paper) * dpi_used / 25.4 / 8) * 8
        cols = min(profile_columns, dots // FONT_A_DOTS)
    image_impl = next(
        (impl for impl in ("bitImageRaster", "bitImageColumn") if features.get(impl)), None
    )
    return Paper(
        profile=profile,
        columns=columns or cols,
        dots=dots,
        dpi=dpi_used,
        paper_mm=paper,
        code_pages=_usable_pages(data),
        hw_barcodes=bool(features.get("barcodeB")),
        hw_ean=bool(features.get("barcodeA")),
        image_impl=image_impl,
        cutter=bool(features.get("paperFullCut") or features.get("paperPartCut")),
        dot_matrix=not features.get("bitImageRaster") and bool(features.get("bitImageColumn")),
    )


def paper_from_config(config) -> Paper:
    """The Paper a [printer] section describes."""
    return paper_for(config.profile, config.paper_mm, config.columns)


def as_paper(paper: Paper | int | float | None) -> Paper:
    """A Paper, or the default profile on a roll this wide (mm)."""
    if isinstance(paper, Paper):
        return paper
    return paper_for(DEFAULT_PROFILE, paper)


# ---------------------------------------------------------------- operations


@dataclass(frozen=True)
class Init:
    """Start of a document: reset the printer (ESC @) and select this code page."""

    page: CodePage | None


@dataclass(frozen=True)
class Text:
    text: str
    align: str = "left"  # left, center, right
    bold: bool = False
    double: bool = False  # double width and height


@dataclass(frozen=True)
class Barcode:
    data: str
    kind: str = "CODE128"  # CODE128 or EAN13


@dataclass(frozen=True)
class Qr:
    data: str


@dataclass(frozen=True)
class Logo:
    path: str


@dataclass(frozen=True)
class Feed:
    lines: int = 1


@dataclass(frozen=True)
class Cut:
    pass


Op = Init | Text | Logo | Barcode | Qr | Feed | Cut


# ---------------------------------------------------------------- barcodes


@dataclass(frozen=True)
class BarcodePlan:
    """How a barcode goes on paper: "hw" (the printer's GS k), "raster" (a bitmap),
    "rotated" (a bitmap turned 90 degrees, for a code too long for the paper's
    width at 2 dots a module) or "text" (a printer with neither)."""

    method: str
    module: int  # dots per narrow bar
    modules: int  # symbol width in modules, quiet zones excluded
    quiet: int  # quiet zone per side, in modules


MIN_MODULE_DOTS = 2  # 0.25 mm at 203 dpi: what common handheld scanners read
BAR_HEIGHT_MM = 12


def _code128_modules(data: str) -> int:
    """Width of Code 128 in code set B: start, data, check (11 each) and stop (13)."""
    return (len(data) + 2) * 11 + 13


def _code128_optimised_modules(data: str) -> int:
    """Width of the shortest Code 128 (python-barcode switches to set C for digits)."""
    import barcode  # noqa: PLC0415

    return len("".join(barcode.get("code128", data).build()))


def barcode_plan(op: Barcode, paper: Paper) -> BarcodePlan:
    if op.kind == "EAN13":
        modules, quiet, hardware = 95, 11, paper.hw_ean
    else:
        modules, quiet, hardware = _code128_modules(op.data), 10, paper.hw_barcodes
    for module in (3, 2):
        if hardware and (modules + 2 * quiet) * module <= paper.dots:
            return BarcodePlan("hw", module, modules, quiet)
    if paper.image_impl is None:
        return BarcodePlan("text", 0, modules, quiet)
    if op.kind != "EAN13":
        modules = _code128_optimised_modules(op.data)
    for module in (3, 2):
        if (modules + 2 * quiet) * module <= paper.dots:
            return BarcodePlan("raster", module, modules, quiet)
    return BarcodePlan("rotated", MIN_MODULE_DOTS, modules, quiet)


def module_dots(op: Barcode, paper: Paper | int) -> int:
    return barcode_plan(op, as_paper(paper)).module


def bar_height_dots(paper: Paper) -> int:
    return round(BAR_HEIGHT_MM * paper.dpi / 25.4)


# ---------------------------------------------------------------- text helpers


def wrap(text: str, width: int, indent: str = "") -> list[str]:
    """Words onto lines of `width`; a word longer than a line is broken."""
    lines = textwrap.wrap(
        text,
        width,
        subsequent_indent=indent if len(indent) < width // 2 else "",
        break_on_hyphens=False,
        drop_whitespace=True,
    )
    return lines or [""]


def pair(left: str, right: str, width: int, indent: str = "  ") -> list[str]:
    """`left` and `right` on one line, `right` flush right; a long `left` wraps and
    `right` stays on the line with its last part, never on a line of its own."""
    room = width - len(right) - 1
    if len(left) <= room:
        return [f"{left:<{room}} {right}"]
    if room >= 6:
        lines = wrap(left, room, indent)
        return lines[:-1] + [f"{lines[-1]:<{room}} {right}"]
    # An amount nearly as wide as the paper: the label's last word shares its line.
    words = left.split()
    head, last = " ".join(words[:-1]), words[-1] if words else ""
    lines = wrap(head, width, indent) if head else []
    tail = f"{last} {right}"
    return lines + (wrap(tail, width, indent) if len(tail) > width else [tail.rjust(width)])


# A trailing amount in any locale's digits and separators ("1,234.50 EUR", "1.234,50 EUR",
# "1 234,50 EUR" with a no-break space), with its currency code.
AMOUNT_AT_END = r"^(?P<label>.*?\S)\s+(?P<amount>[-+]?\d[\d.,\u00a0\u202f']*( [A-Z]{3})?)$"


def fit_line(line: str, width: int) -> list[str]:
    """A preformatted report line on `width` columns: a trailing amount stays with
    its label (the label wraps); other text wraps at word boundaries."""
    import re  # noqa: PLC0415

    line = line.rstrip()
    if len(line) <= width:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    match = re.match(AMOUNT_AT_END, line.strip())
    if match:
        return pair(indent + match["label"], match["amount"], width, indent + "  ")
    return wrap(line, width, indent + "  ")


def _amount(value: Decimal, currency: str = "EUR", language: str = "en") -> str:
    """An amount for a receipt column, as the shop's language writes it (no sign)."""
    return i18n.format_amount(value, currency, language)


def _pct(rate: Decimal, language: str = "en") -> str:
    """A tax rate as the language writes it: `19%` (en), `19 %` (de), `7,5 %`."""
    return i18n.format_percent(rate, language)


def _centred(lines, width: int, bold: bool = False) -> list[Op]:
    return [Text(part, "center", bold) for line in lines for part in wrap(line, width)]


def _heading(text: str, width: int) -> list[Op]:
    """The shop's name: double size where it fits in half the columns."""
    if len(text) <= width // 2:
        return [Text(text, "center", bold=True, double=True)]
    return _centred([text], width, bold=True)


# ---------------------------------------------------------------- documents


# Words printed on documents, translated into the document's language.
TITLES = {"sale": "", "return": N_("RETURN"), "void": N_("VOID"), "exchange": N_("EXCHANGE")}
TENDERS = {"cash": N_("cash"), "card": N_("card")}  # other kinds print as they are stored
NOTES = {"returned": N_("returned"), "voided": N_("voided")}
# The default receipt footer ([checkout] receipt_footer); a shop's own lines print as
# written unless the catalogs happen to hold them.
FOOTER = N_("Thank you!")


def _receipt_words(receipt: Receipt) -> dict[str, str]:
    gettext = i18n.translator(receipt.language).gettext
    return {
        "reprint": gettext("REPRINT"),
        "discount": gettext("discount"),
        "total": gettext("TOTAL {currency}"),
        "rounding": gettext("cash rounding"),
        "change": gettext("change"),
        "net": gettext("net"),
        "tax": gettext("tax"),
    }


def _note(note: str, language: str) -> str:
    tr = i18n.translator(language)
    if note.startswith("lot "):  # kiosk.ledger.receipts: "lot <the lot's code>"
        return tr.gettext("lot {lot}").format(lot=note[4:])
    return tr.gettext(NOTES[note]) if note in NOTES else note


def receipt_strings(receipt: Receipt) -> list[str]:
    gettext = i18n.translator(receipt.language).gettext
    strings = [receipt.store, receipt.number, receipt.currency, *receipt.header]
    strings += [gettext(line) for line in receipt.footer]
    strings += _receipt_words(receipt).values()
    strings += [gettext(TITLES[receipt.kind])] if TITLES.get(receipt.kind) else []
    strings.append(_amount(Decimal("1234.5"), receipt.currency, receipt.language))
    strings.append(i18n.format_datetime(receipt.when, receipt.language))
    for line in receipt.lines:
        strings += [line.name, _note(line.note or "", receipt.language), line.tax_code]
    strings += [gettext(TENDERS.get(t.kind, t.kind)) + (t.reference or "") for t in receipt.tenders]
    return strings


def receipt_ops(receipt: Receipt, paper: Paper | int | None = None) -> list[Op]:
    """A receipt in the shop's language (`receipt.language`): its words from the
    catalogs, its amounts, quantities, weights and date formatted by Babel."""
    paper = as_paper(paper)
    charset = paper.charset(receipt_strings(receipt))
    t = charset.fit
    lang = receipt.language
    gettext = i18n.translator(lang).gettext
    words = {key: t(text) for key, text in _receipt_words(receipt).items()}

    def amount(value: Decimal) -> str:
        return t(_amount(value, receipt.currency, lang))

    width = paper.columns
    ops: list[Op] = [Init(charset.page)]
    if receipt.logo:
        ops.append(Logo(receipt.logo))
    header = [t(line) for line in (receipt.header or (receipt.store,))]
    ops += _heading(header[0], width)
    ops += _centred(header[1:], width)
    title = t(gettext(TITLES[receipt.kind])) if TITLES[receipt.kind] else ""
    if receipt.reprint:
        title = (title + " " + words["reprint"]).strip()
    if title:
        ops.append(Text(title, "center", bold=True))
    when = t(i18n.format_datetime(receipt.when, lang))
    ops += [Text(s) for s in pair(when, t(receipt.number), width)]
    ops.append(Text("-" * width))
    for line in receipt.lines:
        ops += [
            Text(s) for s in pair(t(line.name), f"{amount(line.total)} {t(line.tax_code)}", width)
        ]
        if line.qty != 1 or line.unit == "kg":
            qty = (
                i18n.format_weight(line.qty, lang)
                if line.unit == "kg"
                else i18n.format_number(line.qty, lang)
            )
            each = f"  {t(qty)} x {amount(line.unit_price)}"
            ops += [Text(s) for s in wrap(each, width, "    ")]
        if line.discount:
            ops += [
                Text(s) for s in pair("  " + words["discount"], f"-{amount(line.discount)}", width)
            ]
        if line.note:
            ops += [Text(s) for s in wrap(f"  {t(_note(line.note, lang))}", width, "    ")]
    ops.append(Text("-" * width))
    total = pair(words["total"].format(currency=t(receipt.currency)), amount(receipt.total), width)
    ops += [Text(s, bold=True) for s in total]
    if receipt.rounding:
        ops += [Text(s) for s in pair(words["rounding"], amount(receipt.rounding), width)]
    for tender in receipt.tenders:
        ref = f" {t(tender.reference)}" if tender.reference else ""
        kind = t(gettext(TENDERS.get(tender.kind, tender.kind)))
        ops += [Text(s) for s in pair(f"{kind}{ref}", amount(tender.amount), width)]
    if receipt.change:
        ops += [Text(s) for s in pair(words["change"], amount(receipt.change), width)]
    net, tax_word = words["net"], words["tax"]
    for tax in receipt.taxes:
        rate = f"{t(tax.code)} {t(_pct(tax.rate, lang))}"
        one = pair(f"{rate} {net} {amount(tax.net)}", f"{tax_word} {amount(tax.tax)}", width)
        if len(one) == 1:
            ops.append(Text(one[0]))
        else:
            ops += [Text(s) for s in pair(f"{rate} {net}", amount(tax.net), width)]
            ops += [Text(s) for s in pair(f"{rate} {tax_word}", amount(tax.tax), width)]
    ops.append(Feed())
    ops.append(Barcode(receipt.barcode))
    if receipt.qr:
        ops.append(Qr(receipt.qr))
    ops += _centred([t(gettext(line)) for line in receipt.footer], width)
    ops += [Feed(2), Cut()]
    return ops


def kit_label_ops(label: KitLabel, paper: Paper | int | None = 58) -> list[Op]:
    paper = as_paper(paper)
    lang = label.language
    gettext = i18n.translator(lang).gettext
    bom = gettext("BOM v{version}").format(version=label.bom_version)
    assembled = gettext("assembled {date}").format(date=i18n.format_date(label.assembled, lang))
    lot = gettext("lot {lot}").format(lot=label.lot or "-")
    contents = gettext("contents:")
    strings = [label.name, label.kit_sku, bom, assembled, lot, contents]
    strings += [n for n, _ in label.contents]
    charset = paper.charset(strings)
    t = charset.fit
    width = paper.columns
    kind = "EAN13" if label.barcode.isdigit() and len(label.barcode) == 13 else "CODE128"
    ops: list[Op] = [Init(charset.page)]
    ops += _centred([t(label.name)], width, bold=True)
    ops.append(Barcode(label.barcode, kind))
    ops += [Text(s) for s in pair(t(label.kit_sku), t(bom), width)]
    ops += [Text(s) for s in pair(t(assembled), t(lot), width)]
    ops.append(Text(t(contents)))
    for name, qty in label.contents:
        count = i18n.format_number(qty, lang)
        ops += [Text(s) for s in wrap(f"  {count} x {t(name)}", width, "      ")]
    ops += [Feed(2), Cut()]
    return ops


def report_ops(report: TextReport, paper: Paper | int | None = None) -> list[Op]:
    paper = as_paper(paper)
    charset = paper.charset(report.lines)
    ops: list[Op] = [Init(charset.page)]
    for line in report.lines:
        ops += [Text(part) for part in fit_line(charset.fit(line), paper.columns)]
    return ops + [Feed(2), Cut()]


def text_lines(ops: list[Op], width: int) -> list[str]:
    """The text a layout prints, as plain lines (terminals, logs)."""
    lines: list[str] = []
    for op in ops:
        if isinstance(op, Text):
            lines.append(op.text.center(width).rstrip() if op.align == "center" else op.text)
        elif isinstance(op, Barcode):
            lines.append(f"[{op.data}]".center(width).rstrip())
    return lines
