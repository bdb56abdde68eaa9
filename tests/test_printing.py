"""Receipts and labels as the printers shops own receive them: the bytes python-escpos
writes (Dummy and File) are decoded by tests/escpos_decoder.py, written from the
ESC/POS command reference and not from the layout code, for five profiles at three
paper widths. Columns and print widths expected here are the printers' own figures
(font A columns scale with the printable width: 48 mm of a 72 mm head keeps 2/3)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
import zxingcpp
from escpos.capabilities import get_profile
from escpos.printer import Dummy, File
from PIL import Image

from kiosk.checkout.report_text import z_report_lines
from kiosk.config import Config, PrinterConfig, parse
from kiosk.documents import KitLabel, Receipt, ReceiptLine, TaxLine, TenderLine, TextReport
from kiosk.drivers.layout import paper_for
from kiosk.drivers.printer import EscposPrinter
from kiosk.ledger.reports import ZReport
from tests.escpos_decoder import Bitmap, Decoder, Document, paper_image

PROFILES = ["default", "TM-T88V", "TM-T20II", "POS-5890", "TM-U220"]
PAPERS = [58, 72, 80]
# (columns in font A, printable dots) per profile and paper roll
EXPECTED = {
    ("default", 58): (32, 384), ("default", 72): (42, 512), ("default", 80): (42, 576),
    ("TM-T88V", 58): (28, 336), ("TM-T88V", 72): (37, 448), ("TM-T88V", 80): (42, 512),
    ("TM-T20II", 58): (32, 384), ("TM-T20II", 72): (42, 512), ("TM-T20II", 80): (48, 576),
    ("POS-5890", 58): (32, 384), ("POS-5890", 72): (32, 384), ("POS-5890", 80): (32, 384),
    ("TM-U220", 58): (32, 304), ("TM-U220", 72): (42, 400), ("TM-U220", 80): (42, 400),
}  # fmt: skip
CUTTER = {"default", "TM-T88V", "TM-T20II"}


def shop_receipt(kind="sale", reprint=False) -> Receipt:
    return Receipt(
        store="Bäckerei Müller",
        device="till-01",
        number="till-01-000042",
        kind=kind,
        when=datetime(2026, 11, 23, 9, 30),
        currency="EUR",
        lines=(
            ReceiptLine("Brötchen Körnerstange", D(6), "each", D("0.45"), D("2.70"), "B"),
            ReceiptLine(
                "Bœuf bourguignon façon grand-mère, crème fraîche",
                D(1),
                "each",
                D("1234.50"),
                D("1234.50"),
                "A",
            ),
            ReceiptLine("Äpfel Elstar", D("1.532"), "kg", D("2.99"), D("4.58"), "B", D("0.20")),
            ReceiptLine(
                "Geschenkkarte 5 € / £4",
                D(1),
                "each",
                D("5.00"),
                D("5.00"),
                "Z",
                note="Gültig bis 31.12. – nicht übertragbar",
            ),
        ),  # fmt: skip
        taxes=(
            TaxLine("A", D("0.19"), D("1037.39"), D("197.11")),
            TaxLine("B", D("0.07"), D("6.80"), D("0.48")),
        ),
        tenders=(TenderLine("card", D("1000.00"), "AUTH77"), TenderLine("cash", D("300.00"))),
        total=D("1246.78"),
        rounding=D("0.02"),
        change=D("53.20"),
        barcode="RCPtill-01-000042",
        header=("Bäckerei Müller", "Große Straße 5 – 10115 Berlin"),
        footer=("Merci & à bientôt – Umtausch binnen 14 Tagen",),
        qr="https://shop.example/r/till-01-000042",
        reprint=reprint,
    )


LABEL = KitLabel(
    "REPAIR", "Réparation écran – Kit für Größe M", "4001234000077", 3, date(2026, 11, 23),
    "K-7", (("Spudger (Öffner)", 2), ("Tournevis cruciforme", 1)),
)  # fmt: skip

# label -> amount pairs that must share a line
PAIRS = [
    ("TOTAL EUR", "1,246.78"), ("change", "53.20"), ("card AUTH77", "1,000.00"),
    ("cash", "300.00"), ("rounding", "0.02"), ("fraîche", "1,234.50 A"),
    ("Körnerstange", "2.70 B"), ("Elstar", "4.58 B"), ("discount", "-0.20"),
]  # fmt: skip


def decoder(profile: str) -> Decoder:
    return Decoder(get_profile(profile).profile_data["codePages"])


def printed(profile: str, paper_mm: int, *documents) -> tuple[bytes, list[Document]]:
    dummy = Dummy(profile=profile)
    printer = EscposPrinter(dummy, paper_for(profile, paper_mm))
    for document in documents:
        if isinstance(document, Receipt):
            printer.print_receipt(document)
        elif isinstance(document, KitLabel):
            printer.print_kit_label(document)
        else:
            printer.print_report(document)
    return dummy.output, decoder(profile).decode(dummy.output)


def expected_text(text: str, profile: str) -> str:
    """What a profile's code pages make of a string: unchanged, or with the signs and
    ligatures it lacks spelled out (TM-U220 has PC437 only)."""
    if profile == "TM-U220":
        for sign, spelled in {"€": "EUR", "œ": "oe", "–": "-", "ô": "ô"}.items():
            text = text.replace(sign, spelled)
    return text


def check_document(doc: Document, profile: str, paper_mm: int) -> None:
    columns, dots = EXPECTED[profile, paper_mm]
    assert doc.starts_with_init, "a document starts with ESC @"
    listed = {int(n) for n in get_profile(profile).profile_data["codePages"]}
    assert doc.pages and set(doc.pages) <= listed, doc.pages
    for line in doc.lines:
        assert line.cells() <= columns, f"{line.text!r} is wider than {columns} columns"
        assert "?" not in line.text, f"{line.text!r}: a character the printer lacks"
    for bitmap in doc.bitmaps:
        assert bitmap.image.width <= dots
    assert doc.cuts == (1 if profile in CUTTER else 0)


def words(doc: Document) -> set[str]:
    return {word.strip(",.()") for line in doc.lines for word in line.text.split()}


def scan(image: Image.Image) -> dict[str, zxingcpp.Result]:
    return {r.text: r for r in zxingcpp.read_barcodes(image.convert("L"))}


def narrowest_bar(image: Image.Image, result: zxingcpp.Result) -> int:
    """The thinnest bar along a scan line through the middle of the symbol."""
    pos = result.position
    xs = [pos.top_left.x, pos.top_right.x, pos.bottom_left.x, pos.bottom_right.x]
    ys = [pos.top_left.y, pos.top_right.y, pos.bottom_left.y, pos.bottom_right.y]
    vertical = result.orientation in (90, -90, 270)
    if vertical:
        x = (min(xs) + max(xs)) // 2
        pixels = [image.getpixel((x, y)) for y in range(min(ys), max(ys) + 1)]
    else:
        y = (min(ys) + max(ys)) // 2
        pixels = [image.getpixel((x, y)) for x in range(min(xs), max(xs) + 1)]
    runs, run, last = [], 0, None
    for value in (0 if p == 0 else 1 for p in pixels):
        if value == last:
            run += 1
        else:
            if last == 0:
                runs.append(run)
            run, last = 1, value
    return min(runs)


def quiet_zone(image: Image.Image, result: zxingcpp.Result) -> int:
    """White dots on each side of the symbol along its scan line, out to the next
    mark or the paper's edge; the smaller side."""
    pos = result.position
    xs = [pos.top_left.x, pos.top_right.x, pos.bottom_left.x, pos.bottom_right.x]
    ys = [pos.top_left.y, pos.top_right.y, pos.bottom_left.y, pos.bottom_right.y]
    if result.orientation in (90, -90, 270):
        x = (min(xs) + max(xs)) // 2
        line = [image.getpixel((x, y)) for y in range(image.height)]
        start, end = min(ys), max(ys)
    else:
        y = (min(ys) + max(ys)) // 2
        line = [image.getpixel((x, y)) for x in range(image.width)]
        start, end = min(xs), max(xs)
    while line[start] != 0:  # the first and last bar, where zxing's corners are near
        start += 1
    while line[end] != 0:
        end -= 1
    before = next((start - i for i in range(start - 1, -1, -1) if line[i] == 0), start + 1) - 1
    after = next((i - end for i in range(end + 1, len(line)) if line[i] == 0), len(line) - end)
    return min(before, after - 1 if after < len(line) - end else after)


# ---------------------------------------------------------------- every profile, every width


@pytest.mark.parametrize("paper_mm", PAPERS)
@pytest.mark.parametrize("profile", PROFILES)
def test_receipt_decoded_from_the_bytes(profile, paper_mm, tmp_path):
    data, docs = printed(profile, paper_mm, shop_receipt())
    assert data.startswith(b"\x1b@") and len(docs) == 1
    (doc,) = docs
    check_document(doc, profile, paper_mm)
    for label, amount in PAIRS:
        lines = [line.text for line in doc.lines if line.text.endswith(amount)]
        assert any(expected_text(label, profile) in line for line in lines), (label, amount)
    found = words(doc)
    for name in ("Bäckerei", "Müller", "Große", "Brötchen", "Äpfel", "façon", "grand-mère",
                 "crème", "fraîche", "Gültig", "übertragbar", "bientôt"):  # fmt: skip
        assert name in found, name
    assert expected_text("Bœuf", profile) in found
    assert expected_text("€", profile) in found
    assert "£4" in found  # PC437 has the pound sign too
    image = paper_image(doc, EXPECTED[profile, paper_mm][1])
    image.save(tmp_path / f"{profile}-{paper_mm}.png")
    codes = scan(image)
    assert "RCPtill-01-000042" in codes and "https://shop.example/r/till-01-000042" in codes
    assert codes["RCPtill-01-000042"].format.name == "Code128"
    gray = image.convert("L")
    bar = codes["RCPtill-01-000042"]
    module = narrowest_bar(gray, bar)
    assert module >= 2, "bars 2 dots wide or more"
    assert quiet_zone(gray, bar) >= 10 * module, "Code 128 asks 10 modules of white"
    if doc.barcodes:  # the printer draws it: GS k with its module width
        assert doc.barcodes[0].module >= 2 and doc.barcodes[0].text() == "RCPtill-01-000042"
    qr = codes["https://shop.example/r/till-01-000042"]
    qr_modules = 29  # version 3
    qr_width = max(p.x for p in (qr.position.top_right, qr.position.bottom_right)) - min(
        p.x for p in (qr.position.top_left, qr.position.bottom_left)
    )
    assert quiet_zone(gray, qr) >= 4 * (qr_width + 1) // qr_modules - 1


@pytest.mark.parametrize("paper_mm", PAPERS)
@pytest.mark.parametrize("profile", PROFILES)
def test_every_document_kind_and_the_label(profile, paper_mm):
    documents = [
        shop_receipt("return"),
        shop_receipt("void"),
        shop_receipt("exchange"),
        shop_receipt("sale", reprint=True),
        LABEL,
        TextReport("Z", tuple(z_report_lines(ZREPORT, config_for(profile, paper_mm)))),
    ]
    data, docs = printed(profile, paper_mm, *documents)
    assert len(docs) == len(documents) and data.count(b"\x1b@") == len(documents)
    for doc in docs:
        check_document(doc, profile, paper_mm)
    titles = [next(line.text for line in doc.lines if line.align == "center" and line.bold
                   and line.text.isupper()) for doc in docs[:4]]  # fmt: skip
    assert titles == ["RETURN", "VOID", "EXCHANGE", "REPRINT"]
    label = docs[4]
    assert {"Réparation", "écran", "Größe", "Öffner", "Tournevis"} <= words(label)
    assert any(line.text.endswith("BOM v3") and "REPAIR" in line.text for line in label.lines)
    assert any(line.text.endswith("lot K-7") for line in label.lines)
    codes = scan(paper_image(label, EXPECTED[profile, paper_mm][1]))
    assert codes["4001234000077"].format.name == "EAN13"
    check_z_report(docs[5], EXPECTED[profile, paper_mm][0])


ZREPORT = ZReport(
    day=date(2026, 11, 23),
    start=datetime(2026, 11, 22, 23, 0),
    end=datetime(2026, 11, 23, 23, 0),
    counts={"sale": 128, "return": 3, "void": 1},
    gross_sales=D("123456.78"),
    returns=D("-1234.50"),
    voids=D("-99.90"),
    discounts=D("345.67"),
    net_total=D("122122.38"),
    rounding=D("-0.04"),
    tenders={"cash": D("45678.90"), "card": D("76443.48")},
    taxes={
        "A": (D("0.19"), D("98765.43"), D("18765.43")),
        "B": (D("0.07"), D("4321.00"), D("302.47")),
    },  # fmt: skip
    opening_float=D("150.00"),
    first_receipt="till-01-000001",
    last_receipt="till-01-000132",
)
Z_FIGURES = [
    ("gross", "123,456.78 EUR"), ("returns", "-1,234.50 EUR"), ("voids", "-99.90 EUR"),
    ("discounts", "345.67 EUR"), ("rounding", "-0.04 EUR"), ("net", "122,122.38 EUR"),
    ("cash", "45,678.90 EUR"), ("card", "76,443.48 EUR"), ("A 19% net", "98,765.43 EUR"),
    ("A 19%", "18,765.43 EUR"), ("B 7% net", "4,321.00 EUR"), ("B 7%", "302.47 EUR"),
    ("float", "150.00 EUR"), ("cash expected", "45,828.90 EUR"),
]  # fmt: skip


def config_for(profile: str, paper_mm: int) -> Config:
    return Config(printer=PrinterConfig(profile=profile, paper_mm=paper_mm))


def check_z_report(doc: Document, columns: int) -> None:
    for label, figure in Z_FIGURES:
        assert any(label in line.text and figure in line.text for line in doc.lines), (
            f"{figure} not on a line with {label!r} at {columns} columns"
        )
    assert all(line.cells() <= columns for line in doc.lines)


def test_z_report_at_32_columns_keeps_every_figure():
    """The 58 mm Z report: laid out 32 wide, nothing cut, every figure by its label."""
    config = parse('[printer]\nprofile = "POS-5890"\n')
    lines = list(z_report_lines(ZREPORT, config))
    assert max(map(len, lines)) <= 32
    _, (doc,) = printed("POS-5890", 58, TextReport("Z", tuple(lines)))
    check_z_report(doc, 32)
    wide = list(z_report_lines(ZREPORT, config, width=80))
    assert any("cash expected in drawer" in line for line in wide)


def test_euro_goes_to_a_code_page_the_printer_has():
    """€ with the default profile: CP1252 (ESC t 16) or PC858 (19), not ISO 8859-7 (15)."""
    for profile in ("default", "TM-T88V", "TM-T20II", "POS-5890"):
        _, (doc,) = printed(profile, 80, shop_receipt())
        assert doc.pages == [16], (profile, doc.pages)
        assert "€" in words(doc)
    _, (doc,) = printed("TM-U220", 80, shop_receipt())
    assert doc.pages == [0] and "EUR" in words(doc) and "€" not in doc.text()


def test_a_reset_printer_still_prints_the_second_receipt_right():
    """Two receipts, the printer power-cycled between them: the second one selects its
    code page again after its own ESC @, so it decodes alone."""
    data, docs = printed("TM-T88V", 80, shop_receipt(), shop_receipt())
    second = data[data.index(b"\x1b@", 1) :]
    (alone,) = decoder("TM-T88V").decode(second)
    assert alone.text() == docs[1].text() and "Große" in alone.text()


def test_file_printer_from_config_with_profile(tmp_path):
    target = tmp_path / "lp0"
    config = PrinterConfig(kind="file", device=str(target), profile="TM-T20II", paper_mm=58)
    printer = EscposPrinter.from_config(config)
    assert isinstance(printer.device, File) and printer.device.profile.get_columns("a") == 48
    printer.print_receipt(shop_receipt())
    printer.print_kit_label(LABEL)
    printer.device.close()
    docs = decoder("TM-T20II").decode(target.read_bytes())
    assert len(docs) == 2
    for doc in docs:
        check_document(doc, "TM-T20II", 58)
    assert "RCPtill-01-000042" in scan(paper_image(docs[0], 384))


def test_columns_override_and_transliteration_without_code_pages():
    narrow = paper_for("TM-T20II", None, 40)
    assert (narrow.columns, narrow.dots) == (40, 576)
    odd = shop_receipt()
    odd = replace(odd, footer=("Ελληνικά · Москва · 東京",))
    _, (doc,) = printed("TM-U220", 80, odd)
    assert "?" not in doc.text() and "Ellinika" in doc.text() and "Moskva" in doc.text()


def test_drawer_kick_is_not_a_document():
    dummy = Dummy(profile="TM-T88V")
    printer = EscposPrinter(dummy, 80)
    printer.print_receipt(shop_receipt())
    printer.kick_drawer()
    docs = decoder("TM-T88V").decode(dummy.output)
    assert docs[-1].kicks == [(0, 50, 50)] and docs[-1].cuts == 1


# ---------------------------------------------------------------- the command line


def kiosk(*args, config: Path | None = None, stdin: str | None = None):
    env = {**os.environ, "KIOSK_NO_FILELOG": "1"}
    if config:
        env["KIOSK_CONFIG"] = str(config)
    return subprocess.run(
        [sys.executable, "-m", "kiosk.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        input=stdin,
    )


def test_config_check_refuses_an_unknown_profile_with_the_closest_names(tmp_path):
    bad = tmp_path / "k.toml"
    bad.write_text('[printer]\nprofile = "TM-T88"\n')
    refused = kiosk("config", "check", str(bad))
    assert refused.returncode == 2
    assert "printer.profile" in refused.stderr and "TM-T88V" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    good = tmp_path / "ok.toml"
    good.write_text('[printer]\nprofile = "tm-t20ii"\npaper_mm = 58\n')
    assert kiosk("config", "check", str(good)).returncode == 0
    assert parse(good.read_text()).printer.profile == "TM-T20II"
    assert kiosk("config", "check", str(tmp_path / "none.toml")).returncode == 2


def test_hw_printers_lists_profiles_with_columns_and_code_pages(tmp_path):
    config = tmp_path / "k.toml"
    config.write_text('[printer]\nprofile = "TM-T20II"\npaper_mm = 58\n')
    listed = kiosk("hw", "printers", config=config)
    assert listed.returncode == 0, listed.stderr
    rows = {line[2:].split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert set(PROFILES) <= set(rows)
    assert re.search(r"^\* TM-T20II\s+32\s+48mm\s+384", rows["TM-T20II"])
    assert re.search(r"TM-U220\s+42 .* CP437$", rows["TM-U220"])
    one = kiosk("hw", "printers", "--profile", "pos-5890")
    assert one.returncode == 0 and "CP1252" in one.stdout and "POS-5890" in one.stdout
    unknown = kiosk("hw", "printers", "--profile", "TM-T88")
    assert unknown.returncode == 2 and "TM-T88V" in unknown.stderr


def test_replay_print_sends_the_session_to_the_printer(tmp_path):
    target = tmp_path / "lp0"
    config = tmp_path / "k.toml"
    config.write_text(
        f'[printer]\nkind = "file"\ndevice = "{target}"\nprofile = "POS-5890"\n'
        f'[ledger]\npath = "{tmp_path / "none.db"}"\n'
    )
    script = tmp_path / "s.jsonl"
    script.write_text(
        '{"scan": "4006381333931"}\n{"pay": {"cash": "20.00"}}\n{"receipt": "print"}\n'
    )
    ran = kiosk("replay", str(script), "--print", config=config)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    docs = decoder("POS-5890").decode(target.read_bytes())
    assert len(docs) == 1
    check_document(docs[0], "POS-5890", 58)
    receipts = [code for code in scan(paper_image(docs[0], 384)) if code.startswith("RCP")]
    assert receipts and any(receipts[0][3:] in line.text for line in docs[0].lines)
    nothing = tmp_path / "none.toml"
    nothing.write_text('[printer]\nkind = "none"\n')
    refused = kiosk("replay", str(script), "--print", config=nothing)
    assert refused.returncode == 2 and "no printer configured" in refused.stderr


def test_print_test_preview_for_the_profile(tmp_path):
    config = tmp_path / "k.toml"
    config.write_text('[printer]\nprofile = "TM-T88V"\n')
    png = tmp_path / "p.png"
    shown = kiosk("hw", "print-test", "--preview", str(png), config=config)
    assert shown.returncode == 0 and "42 columns, 512 dots" in shown.stdout
    image = Image.open(png)
    assert image.width == 512 and "RCPdemo-01-000000" in scan(image)
    assert Bitmap  # the decoder's bitmaps are what the preview draws
