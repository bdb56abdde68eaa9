"""Barcode text -> what it means, or a specific reason why it means nothing.

Handles EAN-13, EAN-8, UPC-A, UPC-E (expanded to UPC-A), GTIN-14 case codes,
GS1 variable-measure EAN-13 (prefixes 20-29, layouts from config), GS1 element
strings (GS1-128 / DataMatrix / QR / DataBar, FNC1 sent as ASCII 29, with or without
an AIM symbology identifier, or the printed "(01)..." form), internal Code 128 SKUs,
receipt numbers and staff badges.

Every GTIN is normalised to 14 digits, which is the key the item master stores.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from kiosk.config import BarcodeConfig, VariableMeasureLayout

GS = "\x1d"  # FNC1 as scanners transmit it
SKU_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,31}")


class BarcodeError(ValueError):
    """A scan that cannot be used; `reason` is short enough for a screen."""

    def __init__(self, raw: str, reason: str):
        self.raw = raw
        self.reason = reason
        super().__init__(f"{reason}: {printable(raw)!r}")


def printable(raw: str) -> str:
    return raw.replace(GS, "<GS>")[:60]


def check_digit(body: str) -> str:
    """GS1 mod-10 check digit over `body` (weights 3,1,3... from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def with_check_digit(body: str) -> str:
    return body + check_digit(body)


def is_valid_gtin(digits: str) -> bool:
    return (
        digits.isdigit()
        and len(digits) in (8, 12, 13, 14)
        and (check_digit(digits[:-1]) == digits[-1])
    )


def expand_upce(code: str) -> str:
    """UPC-E (8 digits: number system, 6 digits, check) -> UPC-A (12 digits)."""
    ns, d, check = code[0], code[1:7], code[7]
    last = d[5]
    if last in "012":
        body = f"{ns}{d[0:2]}{last}0000{d[2:5]}"
    elif last == "3":
        body = f"{ns}{d[0:3]}00000{d[3:5]}"
    elif last == "4":
        body = f"{ns}{d[0:4]}00000{d[4]}"
    else:
        body = f"{ns}{d[0:5]}0000{last}"
    return body + check


def compress_upca(upca: str) -> str | None:
    """UPC-A -> UPC-E where the zero-suppression rules allow it (inverse of expand_upce)."""
    ns, m, check = upca[0], upca[1:11], upca[11]
    if ns not in "01":
        return None
    if m[2] in "012" and m[3:7] == "0000":
        return f"{ns}{m[0:2]}{m[7:10]}{m[2]}{check}"
    if m[3:8] == "00000":
        return f"{ns}{m[0:3]}{m[8:10]}3{check}"
    if m[4:9] == "00000":
        return f"{ns}{m[0:4]}{m[9]}4{check}"
    if m[5:9] == "0000" and m[9] in "56789":
        return f"{ns}{m[0:5]}{m[9]}{check}"
    return None


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Gtin:
    gtin: str  # 14 digits
    symbology: str  # EAN-13, EAN-8, UPC-A, UPC-E, GTIN-14
    # 8 digits with no symbology identifier can be a valid EAN-8 and a valid UPC-E:
    # the UPC-E reading, for the item lookup to try second.
    alt: str | None = None

    @property
    def key(self) -> str:
        return self.gtin


@dataclass(frozen=True)
class VariableMeasure:
    """A scale label: item number plus an embedded price or weight."""

    prefix: str
    item: str
    kind: str  # "price" or "weight"
    value: Decimal  # money for price, kg for weight

    @property
    def key(self) -> str:
        return f"{self.prefix}{self.item}"

    @property
    def price(self) -> Decimal | None:
        return self.value if self.kind == "price" else None

    @property
    def weight_kg(self) -> Decimal | None:
        return self.value if self.kind == "weight" else None


@dataclass(frozen=True)
class Gs1Element:
    """A GS1 element string: application identifiers and their values."""

    ais: dict[str, str] = field(hash=False)

    @property
    def gtin(self) -> str | None:
        return self.ais.get("01") or self.ais.get("02")

    @property
    def key(self) -> str | None:
        return self.gtin

    def _decimal(self, family: str) -> Decimal | None:
        for ai, value in self.ais.items():
            if ai.startswith(family):
                return Decimal(int(value)).scaleb(-int(ai[3]))
        return None

    @property
    def weight_kg(self) -> Decimal | None:
        return self._decimal("310")

    @property
    def price(self) -> Decimal | None:
        return self._decimal("392")

    @property
    def count(self) -> int | None:
        value = self.ais.get("30") or self.ais.get("37")
        return int(value) if value else None

    @property
    def batch(self) -> str | None:
        return self.ais.get("10")

    @property
    def serial(self) -> str | None:
        return self.ais.get("21")

    @property
    def expiry(self) -> date | None:
        return parse_gs1_date(self.ais["17"]) if "17" in self.ais else None

    @property
    def best_before(self) -> date | None:
        return parse_gs1_date(self.ais["15"]) if "15" in self.ais else None


@dataclass(frozen=True)
class InternalSku:
    sku: str

    @property
    def key(self) -> str:
        return self.sku


@dataclass(frozen=True)
class ReceiptRef:
    number: str  # "<device>-<seq>"


@dataclass(frozen=True)
class StaffBadge:
    code: str


Parsed = Gtin | VariableMeasure | Gs1Element | InternalSku | ReceiptRef | StaffBadge


# ---------------------------------------------------------------- GS1 AIs

# AI -> (data length; fixed when True, else the maximum; numeric only; check digit)
_AIS: dict[str, tuple[int, bool, bool, bool]] = {
    "00": (18, True, True, True),
    "01": (14, True, True, True),
    "02": (14, True, True, True),
    "10": (20, False, False, False),
    "11": (6, True, True, False),
    "13": (6, True, True, False),
    "15": (6, True, True, False),
    "16": (6, True, True, False),
    "17": (6, True, True, False),
    "21": (20, False, False, False),
    "30": (8, False, True, False),
    "37": (8, False, True, False),
}
_AIS.update({f"310{n}": (6, True, True, False) for n in range(7)})
_AIS.update({f"392{n}": (15, False, True, False) for n in range(10)})
_DATE_AIS = {"11", "13", "15", "16", "17"}
_GS1_SYMBOLOGIES = {"]C1", "]e0", "]d2", "]Q3", "]J1"}
# GS1 character set 82 (the an.. fields)
_CSET82 = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]*")


def parse_gs1_date(value: str, today: date | None = None) -> date:
    """YYMMDD with GS1's century window and DD = 00 meaning the month's last day."""
    if len(value) != 6 or not value.isdigit():
        raise ValueError(f"date {value!r} is not YYMMDD")
    yy, mm, dd = int(value[:2]), int(value[2:4]), int(value[4:])
    this_year = (today or date.today()).year
    century = this_year // 100 * 100
    diff = yy - this_year % 100
    if diff >= 51:
        century -= 100
    elif diff <= -50:
        century += 100
    year = century + yy
    if not 1 <= mm <= 12:
        raise ValueError(f"date {value!r} has month {mm:02d}")
    last = calendar.monthrange(year, mm)[1]
    if dd == 0:
        dd = last
    if dd > last:
        raise ValueError(f"date {value!r} has day {dd:02d}")
    return date(year, mm, dd)


def _ai_at(text: str, pos: int, raw: str) -> str:
    for size in (2, 4):
        candidate = text[pos : pos + size]
        if candidate in _AIS:
            return candidate
    head = text[pos : pos + 4]
    if not head[:2].isdigit() or len(head) < 2:
        raise BarcodeError(raw, f"expected an application identifier at {head!r}")
    raise BarcodeError(raw, f"unsupported application identifier ({head[:2]}..)")


def _check_ai_value(ai: str, value: str, raw: str) -> None:
    length, fixed, numeric, has_check = _AIS[ai]
    if fixed and len(value) != length:
        raise BarcodeError(raw, f"truncated AI ({ai}): needs {length} digits, got {len(value)}")
    if not value:
        raise BarcodeError(raw, f"empty AI ({ai})")
    if len(value) > length:
        raise BarcodeError(raw, f"AI ({ai}) is longer than {length} characters")
    if numeric and not value.isdigit():
        raise BarcodeError(raw, f"AI ({ai}) must be digits")
    if not numeric and not _CSET82.fullmatch(value):
        raise BarcodeError(raw, f"AI ({ai}) has characters outside the GS1 set")
    if has_check and check_digit(value[:-1]) != value[-1]:
        raise BarcodeError(raw, f"bad check digit in AI ({ai})")
    if ai in _DATE_AIS:
        try:
            parse_gs1_date(value)
        except ValueError as exc:
            raise BarcodeError(raw, f"bad date in AI ({ai}): {exc}") from None


def parse_element_string(text: str, raw: str | None = None) -> Gs1Element:
    """Parse "0195012345678903" + GS + "10ABC" (or the "(01)...(10)ABC" printed form)."""
    raw = text if raw is None else raw
    ais: dict[str, str] = {}
    if text.startswith("("):
        parts = re.findall(r"\((\d{2,4})\)([^(]*)", text)
        if "".join(f"({a}){v}" for a, v in parts) != text:
            raise BarcodeError(raw, "malformed (AI)value text")
        for ai, value in parts:
            if ai not in _AIS:
                raise BarcodeError(raw, f"unsupported application identifier ({ai})")
            _check_ai_value(ai, value, raw)
            if ai in ais:
                raise BarcodeError(raw, f"AI ({ai}) appears twice")
            ais[ai] = value
    else:
        text = text.lstrip(GS)
        pos = 0
        while pos < len(text):
            ai = _ai_at(text, pos, raw)
            pos += len(ai)
            length, fixed, _, _ = _AIS[ai]
            if fixed:
                value = text[pos : pos + length]
                pos += length
                if pos < len(text) and text[pos] == GS:
                    pos += 1  # a redundant FNC1 after a fixed field is allowed
            else:
                end = text.find(GS, pos)
                end = len(text) if end < 0 else end
                value = text[pos:end]
                pos = end + 1
            _check_ai_value(ai, value, raw)
            if ai in ais:
                raise BarcodeError(raw, f"AI ({ai}) appears twice")
            ais[ai] = value
    if not ais:
        raise BarcodeError(raw, "empty GS1 element string")
    weights = [ai for ai in ais if ai.startswith("310")]
    prices = [ai for ai in ais if ai.startswith("392")]
    if len(weights) > 1 or len(prices) > 1:
        raise BarcodeError(raw, "more than one weight or price AI")
    if "01" in ais and "02" in ais:
        raise BarcodeError(raw, "AI (01) and (02) together")
    return Gs1Element(ais)


def element_string(ais: dict[str, str]) -> str:
    """The transmitted form: variable-length fields end with FNC1 unless last."""
    out = []
    items = list(ais.items())
    for index, (ai, value) in enumerate(items):
        out.append(ai + value)
        if not _AIS[ai][1] and index < len(items) - 1:
            out.append(GS)
    return "".join(out)


# ---------------------------------------------------------------- parser


class BarcodeParser:
    def __init__(self, config: BarcodeConfig | None = None):
        self.config = config or BarcodeConfig()
        self._layouts: dict[str, VariableMeasureLayout] = {
            layout.prefix: layout for layout in self.config.variable_measure
        }

    def parse(self, raw: str) -> Parsed:
        if not isinstance(raw, str):
            raise BarcodeError(str(raw), "not text")
        text = raw.strip(" \r\n\t")
        if not text:
            raise BarcodeError(raw, "empty scan")
        symbology = None
        if text.startswith("]") and len(text) >= 3:
            symbology, text = text[:3], text[3:]
            if not text:
                raise BarcodeError(raw, "symbology identifier with no data")
        if any(ord(c) < 32 and c != GS or ord(c) == 127 for c in text):
            raise BarcodeError(raw, "control characters in scan (check the scanner's setup)")
        if symbology in _GS1_SYMBOLOGIES or GS in text or text.startswith("("):
            return parse_element_string(text, raw)
        if text.isdigit():
            return self._numeric(text, raw, symbology)
        return self._prefixed(text, raw)

    def _prefixed(self, text: str, raw: str) -> Parsed:
        cfg = self.config
        if text.startswith(cfg.receipt_prefix):
            number = text[len(cfg.receipt_prefix) :]
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*-\d{6,}", number):
                raise BarcodeError(raw, "malformed receipt number")
            return ReceiptRef(number)
        if text.startswith(cfg.staff_prefix):
            code = text[len(cfg.staff_prefix) :]
            if not re.fullmatch(r"[A-Za-z0-9]{1,16}", code):
                raise BarcodeError(raw, "malformed staff badge")
            return StaffBadge(code)
        if text.startswith(cfg.sku_prefix):
            sku = text[len(cfg.sku_prefix) :]
            if not SKU_RE.fullmatch(sku):
                raise BarcodeError(raw, "malformed internal SKU code")
            return InternalSku(sku)
        raise BarcodeError(raw, "unknown barcode format")

    def _numeric(self, digits: str, raw: str, symbology: str | None) -> Parsed:
        n = len(digits)
        if n == 8 and symbology != "]E0":
            if is_valid_gtin(digits):
                alt = None
                if symbology is None and digits[0] in "01":
                    upce = expand_upce(digits)
                    alt = upce.zfill(14) if is_valid_gtin(upce) else None
                return Gtin(digits.zfill(14), "EAN-8", alt)
            if symbology == "]E4" or digits[0] not in "01":
                raise BarcodeError(raw, "bad check digit")
        if n in (6, 7, 8):
            return self._upce(digits, raw)
        if n == 12:
            if not is_valid_gtin(digits):
                raise BarcodeError(raw, "bad check digit")
            return Gtin(digits.zfill(14), "UPC-A")
        if n == 13:
            return self._ean13(digits, raw)
        if n == 14:
            if not is_valid_gtin(digits):
                raise BarcodeError(raw, "bad check digit")
            if digits[0] == "9":
                raise BarcodeError(raw, "variable-measure GTIN-14 needs a GS1-128 weight or price")
            if digits[0] == "0":
                return self._numeric(digits[1:], raw, symbology)
            return Gtin(digits, "GTIN-14")
        if n >= 16 and digits[:2] in ("01", "02"):
            return parse_element_string(digits, raw)  # GS1-128 of fixed-length AIs only
        raise BarcodeError(raw, f"truncated or unknown code ({n} digits)")

    def _upce(self, digits: str, raw: str) -> Gtin:
        if len(digits) == 6:
            digits = "0" + digits
        if digits[0] not in "01":
            raise BarcodeError(raw, "UPC-E number system must be 0 or 1")
        if len(digits) == 7:
            body = expand_upce(digits + "0")[:-1]
            upca = with_check_digit(body)
        else:
            upca = expand_upce(digits)
            if not is_valid_gtin(upca):
                raise BarcodeError(raw, "bad check digit")
        return Gtin(upca.zfill(14), "UPC-E")

    def _ean13(self, digits: str, raw: str) -> Parsed:
        if not is_valid_gtin(digits):
            raise BarcodeError(raw, "bad check digit")
        prefix = digits[:2]
        if prefix == "99" or digits[:3] in ("981", "982", "983", "984", "985"):
            raise BarcodeError(raw, "unknown prefix (a coupon code)")
        layout = self._layouts.get(prefix)
        if layout is None:
            return Gtin(digits.zfill(14), "EAN-13")
        item = digits[2 : 2 + layout.item_digits]
        pos = 2 + layout.item_digits
        value_digits = digits[pos + (1 if layout.value_check else 0) : 12]
        if layout.value_check and _price_check_digit(value_digits) != digits[pos]:
            raise BarcodeError(raw, "bad price check digit")
        value = Decimal(int(value_digits)).scaleb(-layout.value_decimals)
        return VariableMeasure(prefix, item, layout.kind, value)


def _price_check_digit(value4: str) -> str:
    """GS1 check digit for a 4-digit price field (weights 2-, 2-, 3, 5-; GS1 General
    Specifications 7.9.3, whose example 2875 gives 9). Weighting n-: n x digit minus its
    tens digit, units digit; 5+ (0 5 1 6 2 7 3 8 4 9) is another table."""
    table_2m = [0, 2, 4, 6, 8, 9, 1, 3, 5, 7]
    table_3 = [0, 3, 6, 9, 2, 5, 8, 1, 4, 7]
    table_5m = [0, 5, 9, 4, 8, 3, 7, 2, 6, 1]
    d = [int(c) for c in value4]
    total = table_2m[d[0]] + table_2m[d[1]] + table_3[d[2]] + table_5m[d[3]]
    return str((total * 3) % 10)


def variable_measure_code(layout: VariableMeasureLayout, item: str, value: Decimal) -> str:
    """Make the EAN-13 a scale would print (used by tests and the demo)."""
    digits = int((value.scaleb(layout.value_decimals)).to_integral_value())
    value_text = str(digits).zfill(layout.value_digits)
    if len(value_text) > layout.value_digits:
        raise ValueError(f"{value} does not fit in {layout.value_digits} digits")
    check = _price_check_digit(value_text) if layout.value_check else ""
    return with_check_digit(f"{layout.prefix}{item.zfill(layout.item_digits)}{check}{value_text}")
