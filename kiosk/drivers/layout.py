"""Documents -> a short list of print operations, for any paper width.

One layout feeds two renderers: ESC/POS bytes for the printer (printer.py) and a
PNG preview for the screens, the demo and the tests (preview.py), so the preview
shows what the paper will.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from kiosk.documents import KitLabel, Receipt, TextReport

COLUMNS = {58: 32, 80: 48}  # characters per line in the printer's font A
DOTS = {58: 384, 80: 576}  # printable width at 203 dpi


def module_dots(op: Barcode, paper_mm: int) -> int:
    """Dots per bar module: 2 where the code fits (easy to scan), else 1."""
    # EAN-13: 95 modules; Code 128 set B: start, data, check, stop. Plus quiet zones.
    modules = 95 + 20 if op.kind == "EAN13" else (len(op.data) + 3) * 11 + 2 + 20
    return 2 if modules * 2 <= DOTS[paper_mm] else 1


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


Op = Text | Logo | Barcode | Qr | Feed | Cut


def _pair(left: str, right: str, width: int) -> str:
    room = width - len(right) - 1
    return f"{left[:room]:<{room}} {right}"


def _amount(value: Decimal) -> str:
    return f"{value:,}"


def receipt_ops(receipt: Receipt, paper_mm: int = 80) -> list[Op]:
    width = COLUMNS[paper_mm]
    ops: list[Op] = [Logo(receipt.logo)] if receipt.logo else []
    header = receipt.header or (receipt.store,)
    ops.append(Text(header[0], "center", bold=True, double=paper_mm == 80))
    ops += [Text(line, "center") for line in header[1:]]
    title = {"sale": "", "return": "RETURN", "void": "VOID", "exchange": "EXCHANGE"}[receipt.kind]
    if receipt.reprint:
        title = (title + " REPRINT").strip()
    if title:
        ops.append(Text(title, "center", bold=True))
    ops.append(Text(_pair(f"{receipt.when:%Y-%m-%d %H:%M}", receipt.number, width)))
    ops.append(Text("-" * width))
    for line in receipt.lines:
        ops.append(Text(_pair(line.name, f"{_amount(line.total)} {line.tax_code}", width)))
        if line.qty != 1 or line.unit == "kg":
            unit = " kg" if line.unit == "kg" else ""
            ops.append(Text(f"  {line.qty}{unit} x {line.unit_price}"))
        if line.discount:
            ops.append(Text(f"  discount -{line.discount}"))
        if line.note:
            ops.append(Text(f"  {line.note}"))
    ops.append(Text("-" * width))
    ops.append(Text(_pair(f"TOTAL {receipt.currency}", _amount(receipt.total), width), bold=True))
    if receipt.rounding:
        ops.append(Text(_pair("cash rounding", _amount(receipt.rounding), width)))
    for tender in receipt.tenders:
        ref = f" {tender.reference}" if tender.reference else ""
        ops.append(Text(_pair(f"{tender.kind}{ref}", _amount(tender.amount), width)))
    if receipt.change:
        ops.append(Text(_pair("change", _amount(receipt.change), width)))
    for tax in receipt.taxes:
        pct = f"{tax.rate * 100:.2f}".rstrip("0").rstrip(".")
        ops.append(
            Text(_pair(f"{tax.code} {pct}% net {tax.net}", f"tax {_amount(tax.tax)}", width))
        )
    ops.append(Feed())
    ops.append(Barcode(receipt.barcode))
    if receipt.qr:
        ops.append(Qr(receipt.qr))
    ops += [Text(line, "center") for line in receipt.footer]
    ops += [Feed(2), Cut()]
    return ops


def kit_label_ops(label: KitLabel, paper_mm: int = 58) -> list[Op]:
    width = COLUMNS[paper_mm]
    kind = "EAN13" if label.barcode.isdigit() and len(label.barcode) == 13 else "CODE128"
    ops: list[Op] = [
        Text(label.name[:width], "center", bold=True),
        Barcode(label.barcode, kind),
        Text(_pair(label.kit_sku, f"BOM v{label.bom_version}", width)),
        Text(_pair(f"assembled {label.assembled:%Y-%m-%d}", f"lot {label.lot or '-'}", width)),
        Text("contents:"),
    ]
    ops += [Text(f"  {qty} x {name}"[:width]) for name, qty in label.contents]
    ops += [Feed(2), Cut()]
    return ops


def report_ops(report: TextReport, paper_mm: int = 80) -> list[Op]:
    width = COLUMNS[paper_mm]
    return [Text(line[:width]) for line in report.lines] + [Feed(2), Cut()]
