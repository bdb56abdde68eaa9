"""Layout operations -> a PNG preview of the paper (Pillow, python-barcode, qrcode).

The printer's own width in dots (203 dpi: 384 for 58 mm, 576 for 80 mm) and a
monospaced font sized to its columns, so the preview wraps where the paper does.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import barcode
import qrcode
from PIL import Image, ImageDraw, ImageFont

from kiosk.drivers.base import MemoryPrinter
from kiosk.drivers.layout import (
    COLUMNS,
    DOTS,
    Barcode,
    Cut,
    Feed,
    Logo,
    Op,
    Qr,
    Text,
    kit_label_ops,
    module_dots,
    receipt_ops,
    report_ops,
)

MONO = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")
MONO_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf")
MARGIN = 8


@lru_cache(maxsize=16)
def _font(size: int, bold: bool = False) -> ImageFont.ImageFont:
    path = MONO_BOLD if bold else MONO
    if path.exists():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)  # no DejaVu: proportional, but readable


def _font_size(paper_mm: int) -> int:
    """The largest size at which a full line of COLUMNS characters fits."""
    width = DOTS[paper_mm] - 2 * MARGIN
    size = 30
    while size > 8 and _font(size).getlength("M" * COLUMNS[paper_mm]) > width:
        size -= 1
    return size


def barcode_image(op: Barcode, paper_mm: int) -> Image.Image:
    """Bars drawn in whole dots per module, as the printer prints them (python-barcode
    gives the module pattern; a fractional module width would blur)."""
    kind = "ean13" if op.kind == "EAN13" else "code128"
    data = op.data[:12] if kind == "ean13" else op.data
    code = barcode.get(kind, data)
    pattern = "".join(code.build())
    dots = module_dots(op, paper_mm)
    quiet = 10 * dots
    bar_height = 80
    font = _font(_font_size(paper_mm))
    text = code.get_fullcode()
    image = Image.new("L", (len(pattern) * dots + 2 * quiet, bar_height + 28), 255)
    draw = ImageDraw.Draw(image)
    for index, module in enumerate(pattern):
        if module == "1":
            x = quiet + index * dots
            draw.rectangle([x, 0, x + dots - 1, bar_height - 1], fill=0)
    text_width = draw.textlength(text, font=font)
    draw.text(((image.width - text_width) / 2, bar_height + 4), text, font=font, fill=0)
    return image


def logo_image(op: Logo, paper_mm: int) -> Image.Image:
    """The shop's logo, greyscale, no wider than the paper, centred on a paper-wide strip."""
    width = DOTS[paper_mm]
    with Image.open(op.path) as source:
        image = source.convert("L")
    if image.width > width - 2 * MARGIN:
        scale = (width - 2 * MARGIN) / image.width
        image = image.resize((int(image.width * scale), int(image.height * scale)))
    strip = Image.new("L", (width, image.height), 255)
    strip.paste(image, ((width - image.width) // 2, 0))
    return strip


def render_png(ops: list[Op], paper_mm: int = 80) -> Image.Image:
    width = DOTS[paper_mm]
    size = _font_size(paper_mm)
    blocks: list[Image.Image] = []
    for op in ops:
        if isinstance(op, Text):
            scale = 2 if op.double else 1
            font = _font(size * scale, op.bold)
            line_height = int(size * scale * 1.3)
            block = Image.new("L", (width, line_height), 255)
            draw = ImageDraw.Draw(block)
            text_width = draw.textlength(op.text, font=font)
            x = {"left": MARGIN, "center": (width - text_width) / 2,
                 "right": width - MARGIN - text_width}[op.align]  # fmt: skip
            draw.text((max(x, 0), 0), op.text, font=font, fill=0)
            blocks.append(block)
        elif isinstance(op, Logo):
            blocks.append(logo_image(op, paper_mm))
        elif isinstance(op, Barcode | Qr):
            if isinstance(op, Qr):
                image = qrcode.make(op.data, box_size=6, border=4).get_image().convert("L")
            else:
                image = barcode_image(op, paper_mm).convert("L")
            if image.width > width:
                image = image.resize((width, int(image.height * width / image.width)))
            block = Image.new("L", (width, image.height), 255)
            block.paste(image, ((width - image.width) // 2, 0))
            blocks.append(block)
        elif isinstance(op, Feed):
            blocks.append(Image.new("L", (width, int(size * 1.3) * op.lines), 255))
        elif isinstance(op, Cut):
            cut = Image.new("L", (width, 12), 255)
            ImageDraw.Draw(cut).line([(0, 6), (width, 6)], fill=160, width=1)
            blocks.append(cut)
    height = sum(b.height for b in blocks) + 2 * MARGIN
    paper = Image.new("L", (width, height), 255)
    y = MARGIN
    for block in blocks:
        paper.paste(block, (0, y))
        y += block.height
    return paper


class PreviewPrinter:
    """The ReceiptPrinter port for the demo: each document becomes a PNG in a folder."""

    def __init__(self, folder: Path, paper_mm: int = 80):
        self.folder = folder
        self.paper_mm = paper_mm
        self.memory = MemoryPrinter()
        self.files: list[Path] = []
        folder.mkdir(parents=True, exist_ok=True)

    def _save(self, document, ops: list[Op], name: str) -> None:
        self.memory._out(document)  # the same fault simulation as the memory printer
        path = self.folder / f"{name}.png"
        render_png(ops, self.paper_mm).save(path)
        self.files.append(path)

    def print_receipt(self, receipt) -> None:
        suffix = "-reprint" if receipt.reprint else ""
        self._save(
            receipt, receipt_ops(receipt, self.paper_mm), f"receipt-{receipt.number}{suffix}"
        )

    def print_kit_label(self, label) -> None:
        name = f"kit-{label.kit_sku}-{len(self.files)}"
        self._save(label, kit_label_ops(label, self.paper_mm), name)

    def print_report(self, report) -> None:
        self._save(report, report_ops(report, self.paper_mm), f"report-{len(self.files)}")
