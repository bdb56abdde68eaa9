"""An ESC/POS decoder for the tests, written from the ESC/POS command reference and
independent of the kiosk's layout code: it turns the bytes a printer would receive
into documents (split at ESC @) of text lines with their alignment and size, the
code pages selected (ESC t), barcodes (GS k, with an image rendered from the
symbology's own tables), QR codes (GS ( k), bitmaps (GS v 0, GS ( L, ESC *), cuts
(GS V) and drawer kicks (ESC p). An unknown command is an error, not a skip.

Code page numbers are the profile's (`ESC t n` means nothing without the printer's
table); give the decoder the profile's {number: name} map and Python's codecs decode
the bytes. A document that never selects a page prints page 0 (PC437), as a
freshly reset printer does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

# The python-escpos capability database names -> Python codecs.
CODECS = {
    "CP437": "cp437", "CP850": "cp850", "CP852": "cp852", "CP855": "cp855",
    "CP857": "cp857", "CP858": "cp858", "CP860": "cp860", "CP861": "cp861",
    "CP862": "cp862", "CP863": "cp863", "CP864": "cp864", "CP865": "cp865",
    "CP866": "cp866", "CP869": "cp869", "CP737": "cp737", "CP775": "cp775",
    "CP720": "cp720", "CP874": "cp874", "CP1125": "cp1125", "CP1250": "cp1250",
    "CP1251": "cp1251", "CP1252": "cp1252", "CP1253": "cp1253", "CP1254": "cp1254",
    "CP1255": "cp1255", "CP1256": "cp1256", "CP1257": "cp1257", "CP1258": "cp1258",
    "ISO_8859-1": "latin_1", "ISO_8859-2": "iso8859_2", "ISO_8859-7": "iso8859_7",
    "ISO_8859-15": "iso8859_15",
}  # fmt: skip

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10


class DecodeError(Exception):
    pass


@dataclass
class Line:
    text: str
    align: str  # left, center, right
    bold: bool
    width: int  # character width multiplier
    height: int
    font: int  # 0 = font A

    def cells(self) -> int:
        """Columns of font A this line takes."""
        return len(self.text) * self.width


@dataclass
class BarcodeCmd:
    symbology: str  # "CODE128", "EAN13", ...
    data: bytes
    module: int  # GS w
    height: int  # GS h
    align: str

    def pattern(self) -> str:
        """The bar/space modules ("1" = bar) as the printer draws them."""
        if self.symbology == "EAN13":
            return ean13_pattern(self.data.decode("ascii"))
        if self.symbology == "CODE128":
            return code128_pattern(self.data)
        raise DecodeError(f"no renderer for {self.symbology}")

    def text(self) -> str:
        if self.symbology == "EAN13":
            digits = self.data.decode("ascii")
            return digits if len(digits) == 13 else digits + ean_check(digits)
        return code128_text(self.data)


@dataclass
class Bitmap:
    image: Image.Image  # mode "1" pixels as the head prints them (0 = black)
    command: str


@dataclass
class Document:
    starts_with_init: bool
    lines: list[Line] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)  # ESC t numbers, in order
    barcodes: list[BarcodeCmd] = field(default_factory=list)
    qr_codes: list[bytes] = field(default_factory=list)
    bitmaps: list[Bitmap] = field(default_factory=list)
    cuts: int = 0
    kicks: list[tuple[int, int, int]] = field(default_factory=list)
    feeds: int = 0
    blocks: list = field(default_factory=list)  # lines, barcodes and bitmaps in paper order

    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


# ---------------------------------------------------------------- symbologies

EAN_L = ["0001101", "0011001", "0010011", "0111101", "0100011",
         "0110001", "0101111", "0111011", "0110111", "0001011"]  # fmt: skip
EAN_PARITY = ["LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG",
              "LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL"]  # fmt: skip


def ean_check(digits: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits[:12]))
    return str((10 - total % 10) % 10)


def ean13_pattern(digits: str) -> str:
    if len(digits) == 12:
        digits += ean_check(digits)
    if len(digits) != 13 or not digits.isdigit():
        raise DecodeError(f"EAN-13 data {digits!r}")
    right = {d: "".join("1" if b == "0" else "0" for b in EAN_L[d]) for d in range(10)}
    out = "101"
    for parity, d in zip(EAN_PARITY[int(digits[0])], digits[1:7], strict=True):
        out += EAN_L[int(d)] if parity == "L" else right[int(d)][::-1]
    out += "01010"
    out += "".join(right[int(d)] for d in digits[7:])
    return out + "101"


# Code 128 symbol patterns as bar/space widths (ISO/IEC 15417 table 1), values 0-106.
CODE128_TABLE = """
212222 222122 222221 121223 121322 131222 122213 122312 132212 221213
221312 231212 112232 122132 122231 113222 123122 123221 223211 221132
221231 213212 223112 312131 311222 321122 321221 312212 322112 322211
212123 212321 232121 111323 131123 131321 112313 132113 132311 211313
231113 231311 112133 112331 132131 113123 113321 133121 313121 211331
231131 213113 213311 213131 311123 311321 331121 312113 312311 332111
314111 221411 431111 111224 111422 121124 121421 141122 141221 112214
112412 122114 122411 142112 142211 241211 221114 413111 241112 134111
111242 121142 121241 114212 124112 124211 411212 421112 421211 212141
214121 412121 111143 111341 131141 114113 114311 411113 411311 113141
114131 311141 411131 211412 211214 211232 2331112
"""
CODE128_WIDTHS = CODE128_TABLE.split()


def _modules(widths: str) -> str:
    return "".join(("1" if i % 2 == 0 else "0") * int(w) for i, w in enumerate(widths))


def _code128_values(data: bytes) -> tuple[list[int], str]:
    """GS k 73 data ({A/{B/{C code set selection, {{ for a brace) -> symbol values."""
    if len(data) < 2 or data[0:1] != b"{" or chr(data[1]) not in "ABC":
        raise DecodeError(f"Code 128 data must start with a code set: {data!r}")
    start = {"A": 103, "B": 104, "C": 105}[chr(data[1])]
    values, text, code_set, i = [start], "", chr(data[1]), 2
    while i < len(data):
        byte = data[i]
        if byte == ord("{") and i + 1 < len(data):
            nxt = chr(data[i + 1])
            i += 2
            if nxt in "ABC":
                values.append({"A": 101, "B": 100, "C": 99}[nxt])
                code_set = nxt
            elif nxt == "{":
                values.append(ord("{") - 32)
                text += "{"
            elif nxt == "S":
                values.append(98)
            elif nxt in "1234":
                values.append(
                    {"1": 102, "2": 97, "3": 96, "4": 100 if code_set == "B" else 101}[nxt]
                )
            else:
                raise DecodeError(f"Code 128 function {{{nxt}")
            continue
        if code_set == "C":
            if byte > 99:
                raise DecodeError("Code 128 set C byte above 99")
            values.append(byte)
            text += f"{byte:02d}"
        elif code_set == "B":
            values.append(byte - 32)
            text += chr(byte)
        else:
            values.append(byte + 64 if byte < 32 else byte - 32)
            text += chr(byte)
        i += 1
    return values, text


def code128_pattern(data: bytes) -> str:
    values, _ = _code128_values(data)
    check = (values[0] + sum(i * v for i, v in enumerate(values[1:], 1))) % 103
    return "".join(_modules(CODE128_WIDTHS[v]) for v in [*values, check, 106])


def code128_text(data: bytes) -> str:
    return _code128_values(data)[1]


def render_bars(pattern: str, module: int, height: int, quiet: int) -> Image.Image:
    image = Image.new("1", (len(pattern) * module + 2 * quiet, height), 1)
    for i, bit in enumerate(pattern):
        if bit == "1":
            for x in range(quiet + i * module, quiet + (i + 1) * module):
                for y in range(height):
                    image.putpixel((x, y), 0)
    return image


# ---------------------------------------------------------------- the decoder

HW_BARCODES_A = {0: "UPC-A", 1: "UPC-E", 2: "EAN13", 3: "EAN8", 4: "CODE39", 5: "ITF", 6: "NW7"}
HW_BARCODES_B = {65: "UPC-A", 66: "UPC-E", 67: "EAN13", 68: "EAN8", 69: "CODE39", 70: "ITF",
                 71: "NW7", 72: "CODE93", 73: "CODE128"}  # fmt: skip
ALIGN = {0: "left", 1: "center", 2: "right", 48: "left", 49: "center", 50: "right"}
# Commands with a fixed number of parameter bytes, which the decoder checks but ignores.
ESC_FIXED = {b"-": 1, b"G": 1, b"R": 1, b"V": 1, b"{": 1, b"2": 0, b"3": 1, b"J": 1,
             b" ": 1, b"c": 2, b"=": 1, b"U": 1}  # fmt: skip
GS_FIXED = {b"B": 1, b"b": 1, b"L": 2, b"W": 2, b"H": 1, b"f": 1}


class Decoder:
    def __init__(self, code_pages: dict[int, str]):
        self.code_pages = {int(k): v for k, v in code_pages.items()}

    def codec(self, page: int) -> str:
        name = self.code_pages.get(page)
        if name not in CODECS:
            raise DecodeError(f"ESC t {page}: {name or 'not in the profile'}")
        return CODECS[name]

    def decode(self, data: bytes) -> list[Document]:
        docs: list[Document] = []
        doc = Document(starts_with_init=False)
        state = self._reset()
        line = bytearray()
        column_band: list[Image.Image] = []
        i = 0

        def flush_line(force: bool = False):
            nonlocal line
            if line or force:
                text = bytes(line).decode(self.codec(state["page"]))
                entry = Line(text, state["align"], state["bold"], state["w"], state["h"],
                             state["font"])  # fmt: skip
                doc.lines.append(entry)
                doc.blocks.append(entry)
            line = bytearray()

        def flush_columns():
            if column_band:
                width = max(b.width for b in column_band)
                image = Image.new("1", (width, sum(b.height for b in column_band)), 1)
                y = 0
                for band in column_band:
                    image.paste(band, (0, y))
                    y += band.height
                bitmap = Bitmap(image, "ESC *")
                doc.bitmaps.append(bitmap)
                doc.blocks.append(bitmap)
                column_band.clear()

        def need(n: int):
            if i + n > len(data):
                raise DecodeError(f"command at {i} cut short")

        while i < len(data):
            b = data[i]
            if b == 0x0A:
                if column_band and not line:
                    i += 1
                    continue  # the line feed that ends an ESC * band
                flush_line(force=True)
                i += 1
                continue
            if b == 0x0D:
                i += 1
                continue
            if b >= 0x20 and b != 0x7F:
                flush_columns()
                line.append(b)
                i += 1
                continue
            if b == ESC:
                need(2)
                cmd = data[i + 1 : i + 2]
                if cmd == b"@":
                    flush_line()
                    flush_columns()
                    if doc.starts_with_init or doc.blocks or doc.cuts or doc.kicks or doc.pages:
                        docs.append(doc)
                    doc = Document(starts_with_init=True)
                    state = self._reset()
                    i += 2
                elif cmd == b"t":
                    need(3)
                    state["page"] = data[i + 2]
                    self.codec(state["page"])  # the profile must list it
                    doc.pages.append(data[i + 2])
                    i += 3
                elif cmd == b"!":
                    need(3)
                    n = data[i + 2]
                    state.update(font=n & 1, bold=bool(n & 8), h=2 if n & 16 else 1,
                                 w=2 if n & 32 else 1)  # fmt: skip
                    i += 3
                elif cmd == b"E":
                    need(3)
                    state["bold"] = bool(data[i + 2] & 1)
                    i += 3
                elif cmd == b"M":
                    need(3)
                    state["font"] = data[i + 2] & 1 if data[i + 2] < 48 else data[i + 2] - 48
                    i += 3
                elif cmd == b"a":
                    need(3)
                    flush_line()
                    state["align"] = ALIGN[data[i + 2]]
                    i += 3
                elif cmd == b"d":
                    need(3)
                    flush_line()
                    doc.feeds += data[i + 2]
                    i += 3
                elif cmd == b"p":
                    need(5)
                    doc.kicks.append((data[i + 2], data[i + 3], data[i + 4]))
                    i += 5
                elif cmd == b"*":
                    need(5)
                    m, n = data[i + 2], data[i + 3] + 256 * data[i + 4]
                    rows = 3 if m in (32, 33) else 1
                    need(5 + n * rows)
                    raw = data[i + 5 : i + 5 + n * rows]
                    band = Image.new("1", (n if m in (1, 33) else 2 * n, 8 * rows), 1)
                    step = 1 if m in (1, 33) else 2
                    for x in range(n):
                        for r in range(rows):
                            byte = raw[x * rows + r]
                            for bit in range(8):
                                if byte & (0x80 >> bit):
                                    for dx in range(step):
                                        band.putpixel((x * step + dx, r * 8 + bit), 0)
                    column_band.append(band)
                    i += 5 + n * rows
                elif cmd in ESC_FIXED:
                    need(2 + ESC_FIXED[cmd])
                    i += 2 + ESC_FIXED[cmd]
                else:
                    raise DecodeError(f"unknown ESC {cmd!r} at {i}")
                continue
            if b == GS:
                need(2)
                cmd = data[i + 1 : i + 2]
                if cmd == b"!":
                    need(3)
                    n = data[i + 2]
                    state.update(w=(n >> 4) + 1, h=(n & 15) + 1)
                    i += 3
                elif cmd == b"w":
                    need(3)
                    state["module"] = data[i + 2]
                    i += 3
                elif cmd == b"h":
                    need(3)
                    state["bar_height"] = data[i + 2]
                    i += 3
                elif cmd == b"k":
                    flush_line()
                    need(3)
                    m = data[i + 2]
                    if m <= 6:
                        end = data.index(b"\x00", i + 3)
                        payload, i = data[i + 3 : end], end + 1
                        symbology = HW_BARCODES_A[m]
                    else:
                        need(4)
                        n = data[i + 3]
                        need(4 + n)
                        payload, i = data[i + 4 : i + 4 + n], i + 4 + n
                        symbology = HW_BARCODES_B[m]
                    cmd_ = BarcodeCmd(symbology, bytes(payload), state["module"],
                                      state["bar_height"], state["align"])  # fmt: skip
                    doc.barcodes.append(cmd_)
                    doc.blocks.append(cmd_)
                elif cmd == b"V":
                    need(3)
                    flush_line()
                    m = data[i + 2]
                    if m in (0, 1, 48, 49):
                        i += 3
                    elif m in (65, 66, 97, 98, 103, 104):
                        need(4)
                        i += 4
                    else:
                        raise DecodeError(f"GS V {m}")
                    doc.cuts += 1
                elif cmd == b"v":
                    need(8)
                    if data[i + 2] != 0x30:
                        raise DecodeError("GS v other than GS v 0")
                    m = data[i + 3]
                    xb = data[i + 4] + 256 * data[i + 5]
                    y = data[i + 6] + 256 * data[i + 7]
                    need(8 + xb * y)
                    raw = data[i + 8 : i + 8 + xb * y]
                    image = Image.frombytes("1", (xb * 8, y), bytes(x ^ 0xFF for x in raw))
                    if m & 1 or m & 2:
                        image = image.resize((image.width * (2 if m & 1 else 1),
                                              image.height * (2 if m & 2 else 1)))  # fmt: skip
                    flush_line()
                    bitmap = Bitmap(image, "GS v 0")
                    doc.bitmaps.append(bitmap)
                    doc.blocks.append(bitmap)
                    i += 8 + xb * y
                elif cmd == b"(":
                    need(5)
                    fn_group = data[i + 2 : i + 3]
                    size = data[i + 3] + 256 * data[i + 4]
                    need(5 + size)
                    body = data[i + 5 : i + 5 + size]
                    if fn_group == b"k" and body[:2] == b"1P":
                        state["qr"] = body[3:]
                    elif fn_group == b"k" and body[:2] == b"1Q":
                        doc.qr_codes.append(bytes(state["qr"]))
                    elif fn_group == b"L" and body[1:2] == b"p":
                        xw = body[6] + 256 * body[7]
                        yh = body[8] + 256 * body[9]
                        raw = body[10:]
                        state["graphics"] = Image.frombytes(
                            "1", ((xw + 7) // 8 * 8, yh), bytes(x ^ 0xFF for x in raw)
                        )
                    elif fn_group == b"L" and body[1:2] == b"2":
                        bitmap = Bitmap(state["graphics"], "GS ( L")
                        doc.bitmaps.append(bitmap)
                        doc.blocks.append(bitmap)
                    i += 5 + size
                elif cmd in GS_FIXED:
                    need(2 + GS_FIXED[cmd])
                    i += 2 + GS_FIXED[cmd]
                else:
                    raise DecodeError(f"unknown GS {cmd!r} at {i}")
                continue
            if b == DLE and data[i + 1 : i + 2] == b"\x04":
                i += 3  # a real-time status query
                continue
            raise DecodeError(f"control byte {b:#04x} at {i}")
        flush_line()
        flush_columns()
        if doc.blocks or doc.cuts or doc.kicks or doc.starts_with_init:
            docs.append(doc)
        return docs

    @staticmethod
    def _reset() -> dict:
        return {"page": 0, "align": "left", "bold": False, "w": 1, "h": 1, "font": 0,
                "module": 3, "bar_height": 162, "qr": b"", "graphics": None}  # fmt: skip


def paper_image(doc: Document, dots: int, char_dots: int = 12) -> Image.Image:
    """The document's barcodes and bitmaps as the paper shows them, each on a strip of
    the paper's width (text lines left out: enough to scan what is printed)."""
    strips = []
    for block in doc.blocks:
        if isinstance(block, BarcodeCmd):
            bars = render_bars(block.pattern(), block.module, block.height, 0)
            x = {"left": 0, "center": (dots - bars.width) // 2,
                 "right": dots - bars.width}[block.align]  # fmt: skip
            strip = Image.new("1", (dots, bars.height), 1)
            strip.paste(bars, (x, 0))
            strips.append(strip)
        elif isinstance(block, Bitmap):
            strips.append(block.image)
        elif isinstance(block, Line):
            strips.append(Image.new("1", (dots, 24), 1))
    page = Image.new("1", (dots, sum(s.height for s in strips) + 40), 1)
    y = 20
    for strip in strips:
        page.paste(strip, (0, y))
        y += strip.height
    return page
