"""Layout operations -> a PNG preview of the paper (Pillow, python-barcode, qrcode).

The printer's own width in dots (from its profile and paper) and a monospaced font
sized to its columns, so the preview wraps where the paper does. The bitmaps
(barcodes the printer cannot draw itself, QR codes, the logo) are the very images
the printer is sent.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk.drivers.base import MemoryPrinter
from kiosk.drivers.layout import (
    Barcode,
    Cut,
    Feed,
    Logo,
    Op,
    Paper,
    Qr,
    Text,
    as_paper,
    bar_height_dots,
    barcode_plan,
    kit_label_ops,
    paper_from_config,
    receipt_ops,
    report_ops,
)

if TYPE_CHECKING:  # Pillow, python-barcode and qrcode load with the first image drawn
    from PIL import Image, ImageFont

MONO = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")
MONO_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf")
QR_QUIET = 4  # modules of white around a QR code (ISO/IEC 18004)


@lru_cache(maxsize=16)
def _font(size: int, bold: bool = False) -> ImageFont.ImageFont:
    from PIL import ImageFont  # noqa: PLC0415

    path = MONO_BOLD if bold else MONO
    if path.exists():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)  # no DejaVu: proportional, but readable


@lru_cache(maxsize=32)
def _font_size(dots: int, columns: int) -> int:
    """The largest size at which a full line of `columns` characters fits."""
    size = 40
    while size > 6 and _font(size).getlength("M" * columns) > dots:
        size -= 1
    return size


def fit_width(image: Image.Image, paper: Paper) -> Image.Image:
    """A greyscale strip exactly the paper's width with the image centred on it."""
    from PIL import Image  # noqa: PLC0415

    image = image.convert("L")
    if image.width > paper.dots:
        scale = paper.dots / image.width
        image = image.resize((paper.dots, max(1, int(image.height * scale))))
    strip = Image.new("L", (paper.dots, image.height), 255)
    strip.paste(image, ((paper.dots - image.width) // 2, 0))
    return strip


def barcode_image(op: Barcode, paper: Paper | int) -> Image.Image:
    """Bars in whole dots per module (a fractional module would blur), quiet zones
    included, the human-readable text below; turned 90 degrees when the code is too
    long for the paper's width at 2 dots a module."""
    import barcode  # noqa: PLC0415
    from PIL import Image, ImageDraw  # noqa: PLC0415

    paper = as_paper(paper)
    plan = barcode_plan(op, paper)
    kind = "ean13" if op.kind == "EAN13" else "code128"
    code = barcode.get(kind, op.data[:12] if kind == "ean13" else op.data)
    pattern = "".join(code.build())
    dots = max(plan.module, 1)
    quiet = plan.quiet * dots
    bar_height = bar_height_dots(paper)
    width = len(pattern) * dots + 2 * quiet
    bars = Image.new("L", (width, bar_height), 255)
    draw = ImageDraw.Draw(bars)
    for index, module in enumerate(pattern):
        if module == "1":
            x = quiet + index * dots
            draw.rectangle([x, 0, x + dots - 1, bar_height - 1], fill=0)
    if plan.method == "rotated":
        bars = bars.rotate(90, expand=True)
    text = code.get_fullcode()
    font = _font(_font_size(paper.dots, paper.columns))
    text_width = int(font.getlength(text))
    line = int(font.size * 1.4)
    image = Image.new("L", (max(bars.width, text_width), bars.height + line + 4), 255)
    image.paste(bars, ((image.width - bars.width) // 2, 0))
    ImageDraw.Draw(image).text(
        ((image.width - text_width) / 2, bars.height + 4), text, font=font, fill=0
    )
    return image


def qr_image(op: Qr, paper: Paper | int) -> Image.Image:
    """A QR code with its full 4-module quiet zone, modules in whole dots (at most
    1 mm), as large as fits the paper."""
    import qrcode  # noqa: PLC0415

    paper = as_paper(paper)
    code = qrcode.QRCode(border=QR_QUIET, box_size=1)
    code.add_data(op.data)
    code.make(fit=True)
    modules = code.modules_count + 2 * QR_QUIET
    box = max(1, min(paper.dots // modules, round(paper.dpi / 25.4), 8))
    code.box_size = box
    return code.make_image().get_image().convert("L")


def logo_image(op: Logo, paper: Paper | int) -> Image.Image:
    """The shop's logo, greyscale, no wider than the paper."""
    from PIL import Image  # noqa: PLC0415

    paper = as_paper(paper)
    with Image.open(op.path) as source:
        image = source.convert("L")
    if image.width > paper.dots:
        scale = paper.dots / image.width
        image = image.resize((paper.dots, int(image.height * scale)))
    return image


def render_png(ops: list[Op], paper: Paper | int | None = None) -> Image.Image:
    from PIL import Image, ImageDraw  # noqa: PLC0415

    paper = as_paper(paper)
    width = paper.dots
    size = _font_size(width, paper.columns)
    line_height = int(size * 1.35)
    blocks: list[Image.Image] = []
    for op in ops:
        if isinstance(op, Text):
            scale = 2 if op.double else 1
            font = _font(size * scale, op.bold)
            block = Image.new("L", (width, line_height * scale), 255)
            draw = ImageDraw.Draw(block)
            text_width = draw.textlength(op.text, font=font)
            x = {"left": 0, "center": (width - text_width) / 2,
                 "right": width - text_width}[op.align]  # fmt: skip
            draw.text((max(x, 0), 0), op.text, font=font, fill=0)
            blocks.append(block)
        elif isinstance(op, Logo):
            blocks.append(fit_width(logo_image(op, paper), paper))
        elif isinstance(op, Qr):
            blocks.append(fit_width(qr_image(op, paper), paper))
        elif isinstance(op, Barcode):
            if barcode_plan(op, paper).method == "text":
                blocks.append(render_png([Text(op.data, "center")], paper))
            else:
                blocks.append(fit_width(barcode_image(op, paper), paper))
        elif isinstance(op, Feed):
            blocks.append(Image.new("L", (width, line_height * op.lines), 255))
        elif isinstance(op, Cut):
            cut = Image.new("L", (width, 12), 255)
            ImageDraw.Draw(cut).line([(0, 6), (width, 6)], fill=160, width=1)
            blocks.append(cut)
    height = sum(b.height for b in blocks) + 16
    page = Image.new("L", (width, height), 255)
    y = 8
    for block in blocks:
        page.paste(block, (0, y))
        y += block.height
    return page


class PreviewPrinter:
    """The ReceiptPrinter port for the demo: each document becomes a PNG in a folder.

    `paper` is a Paper, a [printer] config section, or a roll width in mm (default
    profile)."""

    def __init__(self, folder: Path, paper=None):
        self.folder = folder
        self._paper = paper
        self.memory = MemoryPrinter()
        self.files: list[Path] = []
        folder.mkdir(parents=True, exist_ok=True)

    @cached_property
    def paper(self) -> Paper:
        """The paper, from python-escpos' profiles when first printed on (loading
        them takes 0.2 s, which the demo's start does not wait for)."""
        paper = self._paper
        if hasattr(paper, "profile") and not isinstance(paper, Paper):
            paper = paper_from_config(paper)
        return as_paper(paper)

    def _save(self, document, ops: list[Op], name: str) -> None:
        self.memory._out(document)  # the same fault simulation as the memory printer
        path = self.folder / f"{name}.png"
        render_png(ops, self.paper).save(path)
        self.files.append(path)

    def print_receipt(self, receipt) -> None:
        suffix = "-reprint" if receipt.reprint else ""
        self._save(receipt, receipt_ops(receipt, self.paper), f"receipt-{receipt.number}{suffix}")

    def print_kit_label(self, label) -> None:
        name = f"kit-{label.kit_sku}-{len(self.files)}"
        self._save(label, kit_label_ops(label, self.paper), name)

    def print_report(self, report) -> None:
        self._save(report, report_ops(report, self.paper), f"report-{len(self.files)}")
