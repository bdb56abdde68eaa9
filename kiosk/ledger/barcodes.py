"""Barcode text -> what it means, or a specific reason why it means nothing.

Handles EAN-13, EAN-8, UPC-A, UPC-E (expanded to UPC-A), GTIN-14 case codes,
GS1 variable-measure EAN-13 (prefixes 20-29, layouts from config), GS1 element
strings (GS1-128 / DataMatrix / QR / DataBar, FNC1 sent as ASCII 29, with or without
an AIM symbology identifier, or the printed "(01)..." form), internal Code 128 SKUs,
receipt numbers and staff badges.

GS1 element strings: the application identifiers in _AI_TABLE (what retail and
fresh-food labels carry), FNC1 required after every AI not of predefined length.
Prices and amounts with an ISO 4217 currency (391n, 393n) are accepted in the shop's
currency only (BarcodeParser(money=config.money)); prices, amounts, weights and
counts must lie within kiosk.numbers' bounds, in the currency's minor unit.

Every GTIN is normalised to 14 digits, which is the key the item master stores.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from kiosk import i18n, numbers
from kiosk.config import BarcodeConfig, MoneyConfig, VariableMeasureLayout
from kiosk.i18n import N_

GS = "\x1d"  # FNC1 as scanners transmit it
SKU_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,31}")


class BarcodeError(ValueError):
    """A scan that cannot be used; `reason` is short enough for a screen."""

    def __init__(self, raw: str, reason: str):
        self.raw = raw
        self.reason = reason  # a Message: the screen shows it in its reader's language
        super().__init__(i18n._("{reason}: {code!r}", reason=reason, code=printable(raw)))


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


def contained_gtin(gtin14: str) -> str | None:
    """The GTIN of one item inside a case whose GTIN-14 has indicator digit 1-8: the
    usual construction (indicator in front of the item's GTIN-13, check digit
    recomputed), as 14 digits. The item master's own case code wins where it differs."""
    if len(gtin14) != 14 or gtin14[0] not in "12345678":
        return None
    return with_check_digit("0" + gtin14[1:13])


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

    @property
    def indicator(self) -> int:
        """A GTIN-14's first digit: 0 for a single item, 1-8 a case (packaging level)."""
        return int(self.gtin[0])

    @property
    def contained_gtin(self) -> str | None:
        """For a case (indicator 1-8): the GTIN of the item it holds (see contained_gtin)."""
        return contained_gtin(self.gtin)


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
    """A GS1 element string: application identifiers and their values (as scanned,
    checked against the AI table and the bounds in parse_element_string)."""

    ais: dict[str, str] = field(hash=False)

    @property
    def gtin(self) -> str | None:
        return self.ais.get("01") or self.ais.get("02")

    @property
    def key(self) -> str | None:
        return self.gtin

    @property
    def contained_gtin(self) -> str | None:
        """(01) of a case (indicator 1-8): the GTIN of the item inside."""
        return contained_gtin(self.ais.get("01", ""))

    @property
    def sscc(self) -> str | None:
        return self.ais.get("00")

    def _family(self, *families: str) -> tuple[str, str] | None:
        for ai, value in self.ais.items():
            if ai[:3] in families and len(ai) == 4:
                return ai, value
        return None

    def _decimal(self, *families: str) -> Decimal | None:
        found = self._family(*families)
        if found is None:
            return None
        ai, value = found
        digits = value[3:] if ai[:3] in CURRENCY_FAMILIES else value
        return Decimal(int(digits)).scaleb(-int(ai[3]))

    @property
    def weight_kg(self) -> Decimal | None:
        """Net weight in kg: (310n) as it is, (320n) pounds converted, to the gram."""
        kg = self._decimal("310")
        if kg is None and (pounds := self._decimal("320")) is not None:
            kg = pounds * LB_KG
        return None if kg is None else kg.quantize(GRAM, ROUND_HALF_EVEN)

    @property
    def price(self) -> Decimal | None:
        """What this variable-measure item costs: (392n), or (393n) in the shop's currency."""
        return self._decimal(*PRICES)

    @property
    def amount_payable(self) -> Decimal | None:
        """(390n), or (391n) in the shop's currency: an amount payable (a payment slip,
        a coupon's value); not an item's price."""
        return self._decimal(*AMOUNTS)

    @property
    def unit_price(self) -> Decimal | None:
        """(395n): the price per unit of measure printed on a fresh-food label."""
        return self._decimal("395")

    @property
    def currency(self) -> str | None:
        """ISO 4217 letters of a (391n) or (393n) amount; parse_element_string refuses
        any but the shop's."""
        found = self._family(*CURRENCY_FAMILIES)
        return None if found is None else CURRENCIES[found[1][:3]]

    @property
    def measures(self) -> dict[str, tuple[Decimal, str]]:
        """Every trade or logistic measure (31nn-36nn): what -> (value, unit)."""
        out = {}
        for ai in self.ais:
            if ai[:3] in MEASURES:
                what, unit = MEASURES[ai[:3]]
                out[what] = (self._decimal(ai[:3]), unit)
        return out

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

    def _date(self, ai: str) -> date | None:
        return parse_gs1_date(self.ais[ai]) if ai in self.ais else None

    @property
    def expiry(self) -> date | None:
        return self._date("17")

    @property
    def best_before(self) -> date | None:
        return self._date("15")

    @property
    def sell_by(self) -> date | None:
        return self._date("16")

    @property
    def packed(self) -> date | None:
        return self._date("13")

    @property
    def produced(self) -> date | None:
        return self._date("11")

    @property
    def expiry_time(self) -> datetime | None:
        """(7003) expiry date and time, in the label's local time (no zone on the label)."""
        value = self.ais.get("7003")
        if value is None:
            return None
        day = parse_gs1_date(value[:6])
        return datetime(day.year, day.month, day.day, int(value[6:8]), int(value[8:10]))

    @property
    def origin(self) -> str | None:
        """(422) country of origin, ISO 3166 numeric."""
        return self.ais.get("422")


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

# The application identifiers retail and fresh-food labels carry, from the GS1 General
# Specifications' AI table (section 3) and GS1's Barcode Syntax Dictionary. Data: n digits,
# x GS1 character set 82; "n6" exactly 6, "x..20" 1 to 20; "[...]" an optional part at the
# end; ":check" what the part must be. "392N9" is the family 3920-3929, whose last digit
# is the number of implied decimals.
_AI_TABLE = """
00 | n18:csum | SSCC
01 | n14:csum | GTIN
02 | n14:csum | CONTENT
10 | x..20 | BATCH/LOT
11 | n6:date | PROD DATE
13 | n6:date | PACK DATE
15 | n6:date | BEST BEFORE
16 | n6:date | SELL BY
17 | n6:date | USE BY
20 | n2 | VARIANT
21 | x..20 | SERIAL
22 | x..20 | CPV
235 | x..28 | TPX
240 | x..30 | ADDITIONAL ID
241 | x..30 | CUST. PART No.
242 | n..6 | MTO VARIANT
243 | x..20 | PCN
250 | x..30 | SECONDARY SERIAL
251 | x..30 | REF. TO SOURCE
30 | n..8:count | VAR. COUNT
37 | n..8:count | COUNT
390N9 | n..15 | AMOUNT
391N9 | n3:currency n..15 | AMOUNT
392N9 | n..15 | PRICE
393N9 | n3:currency n..15 | PRICE
395N5 | n6 | PRICE/UoM
422 | n3:country | ORIGIN
423 | n3:country [n3:country] [n3:country] [n3:country] [n3:country] | COUNTRY - INITIAL PROCESS
424 | n3:country | COUNTRY - PROCESS
425 | n3:country [n3:country] [n3:country] [n3:country] [n3:country] | COUNTRY - DISASSEMBLY
426 | n3:country | COUNTRY - FULL PROCESS
427 | x..3 | ORIGIN SUBDIVISION
7002 | x..30 | MEAT CUT
7003 | n6:yymmdd n4:hhmi | EXPIRY TIME
7005 | x..12 | CATCH AREA
7006 | n6:yymmdd | FIRST FREEZE DATE
7007 | n6:yymmdd [n6:yymmdd] | HARVEST DATE
7008 | x..3 | AQUATIC SPECIES
7009 | x..10 | FISHING GEAR TYPE
7010 | x..2 | PROD METHOD
7011 | n6:yymmdd [n4:hhmi] | TEST BY DATE
703N9 | n3:country x..27 | PROCESSOR # n
8005 | n6 | PRICE PER UNIT
8008 | n6:yymmdd n2:hh [n2:mi] [n2:ss] | PROD TIME
8020 | x..25 | REF No.
8200 | x..70 | PRODUCT URL
90 | x..30 | INTERNAL
"""
_AI_TABLE += "".join(f"9{n} | x..90 | INTERNAL\n" for n in range(1, 10))
# Trade and logistic measures (31nn-36nn: 6 digits, 0-5 implied decimals): what, unit.
_MEASURE_TABLE = """
310 net-weight kg | 311 length m | 312 width m | 313 height m | 314 area m2
315 net-volume l | 316 net-volume m3 | 320 net-weight lb | 321 length in | 322 length ft
323 length yd | 324 width in | 325 width ft | 326 width yd | 327 height in | 328 height ft
329 height yd | 330 gross-weight kg | 331 length m | 332 width m | 333 height m
334 area m2 | 335 volume l | 336 volume m3 | 337 kg-per-m2 kg/m2 | 340 gross-weight lb
341 length in | 342 length ft | 343 length yd | 344 width in | 345 width ft | 346 width yd
347 height in | 348 height ft | 349 height yd | 350 area in2 | 351 area ft2 | 352 area yd2
353 area in2 | 354 area ft2 | 355 area yd2 | 356 net-weight troy-oz | 357 net-volume oz
360 net-volume qt | 361 net-volume gal | 362 volume qt | 363 volume gal | 364 volume in3
365 volume ft3 | 366 volume yd3 | 367 volume in3 | 368 volume ft3 | 369 volume yd3
"""
# ISO 4217: letters and number (the first three digits of 391n and 393n).
_CURRENCY_TABLE = """
AED784 AFN971 ALL008 AMD051 ANG532 AOA973 ARS032 AUD036 AWG533 AZN944 BAM977 BBD052
BDT050 BGN975 BHD048 BIF108 BMD060 BND096 BOB068 BOV984 BRL986 BSD044 BTN064 BWP072
BYN933 BZD084 CAD124 CDF976 CHE947 CHF756 CHW948 CLF990 CLP152 CNY156 COP170 COU970
CRC188 CUC931 CUP192 CVE132 CZK203 DJF262 DKK208 DOP214 DZD012 EGP818 ERN232 ETB230
EUR978 FJD242 FKP238 GBP826 GEL981 GHS936 GIP292 GMD270 GNF324 GTQ320 GYD328 HKD344
HNL340 HRK191 HTG332 HUF348 IDR360 ILS376 INR356 IQD368 IRR364 ISK352 JMD388 JOD400
JPY392 KES404 KGS417 KHR116 KMF174 KPW408 KRW410 KWD414 KYD136 KZT398 LAK418 LBP422
LKR144 LRD430 LSL426 LYD434 MAD504 MDL498 MGA969 MKD807 MMK104 MNT496 MOP446 MRU929
MUR480 MVR462 MWK454 MXN484 MXV979 MYR458 MZN943 NAD516 NGN566 NIO558 NOK578 NPR524
NZD554 OMR512 PAB590 PEN604 PGK598 PHP608 PKR586 PLN985 PYG600 QAR634 RON946 RSD941
RUB643 RWF646 SAR682 SBD090 SCR690 SDG938 SEK752 SGD702 SHP654 SLE925 SLL694 SOS706
SRD968 SSP728 STN930 SVC222 SYP760 SZL748 THB764 TJS972 TMT934 TND788 TOP776 TRY949
TTD780 TWD901 TZS834 UAH980 UGX800 USD840 USN997 UYI940 UYU858 UYW927 UZS860 VED926
VES928 VND704 VUV548 WST882 XAF950 XAG961 XAU959 XBA955 XBB956 XBC957 XBD958 XCD951
XDR960 XOF952 XPD964 XPF953 XPT962 XSU994 XTS963 XUA965 XXX999 YER886 ZAR710 ZMW967
ZWL932
"""
# ISO 3166-1 numeric country codes (422-426, 703n).
_COUNTRY_TABLE = """
004 008 010 012 016 020 024 028 031 032 036 040 044 048 050 051 052 056 060 064 068 070
072 074 076 084 086 090 092 096 100 104 108 112 116 120 124 132 136 140 144 148 152 156
158 162 166 170 174 175 178 180 184 188 191 192 196 203 204 208 212 214 218 222 226 231
232 233 234 238 239 242 246 248 250 254 258 260 262 266 268 270 275 276 288 292 296 300
304 308 312 316 320 324 328 332 334 336 340 344 348 352 356 360 364 368 372 376 380 384
388 392 398 400 404 408 410 414 417 418 422 426 428 430 434 438 440 442 446 450 454 458
462 466 470 474 478 480 484 492 496 498 499 500 504 508 512 516 520 524 528 531 533 534
535 540 548 554 558 562 566 570 574 578 580 581 583 584 585 586 591 598 600 604 608 612
616 620 624 626 630 634 638 642 643 646 652 654 659 660 662 663 666 670 674 678 682 686
688 690 694 702 703 704 705 706 710 716 724 728 729 732 740 744 748 752 756 760 762 764
768 772 776 780 784 788 792 795 796 798 800 804 807 818 826 831 832 833 834 840 850 854
858 860 862 876 882 887 894
"""
# AIs of predefined length, by their first two digits (GS1 General Specifications,
# "element strings with predefined length"): no FNC1 after them. Every other AI's data
# ends at an FNC1 (ASCII 29) or at the end of the scan, fixed length or not.
_PREDEFINED = "00 01 02 03 04 11 12 13 14 15 16 17 18 19 20 31 32 33 34 35 36 41"
PREDEFINED = frozenset(_PREDEFINED.split())
LB_KG = Decimal("0.45359237")  # kilograms in an international pound, exactly
GRAM = Decimal("0.001")
PRICES, AMOUNTS, CURRENCY_FAMILIES = ("392", "393"), ("390", "391"), ("391", "393")
# Families of which a label carries one at most: net weight, price, amount, unit price.
_ONE_OF = (("310", "320"), PRICES, AMOUNTS, ("395", "8005"))


@dataclass(frozen=True)
class _Part:
    kind: str  # "n" digits, "x" GS1 character set 82
    least: int
    most: int
    check: str  # "", csum, date, yymmdd, hhmi, hh, mi, ss, country, currency, count
    optional: bool


MEASURES: dict[str, tuple[str, str]] = {
    cells[0]: (cells[1].replace("-", " "), cells[2])
    for cells in (item.split() for item in re.split(r"[|\n]", _MEASURE_TABLE.strip()))
}
# One part of an AI's data: [optional] kind, fixed length or ..most, :check.
_TOKEN = re.compile(r"(\[?)([nx])(?:(\d+)|\.\.(\d+))(?::(\w+))?\]?")
# The tables are built here at import, not in functions: mutation testing cannot switch
# a mutant on before import, and test_the_ai_table_is_the_standards checks them whole.
AIS: dict[str, tuple[_Part, ...]] = {}
for _row in _AI_TABLE.strip().splitlines():
    _ai, _spec, _title = (cell.strip() for cell in _row.split("|"))
    _data = tuple(
        _Part(kind, int(fixed or 1), int(fixed or most), check, bool(optional))
        for optional, kind, fixed, most, check in _TOKEN.findall(_spec)
    )
    _head, _, _last = _ai.partition("N")
    AIS.update({f"{_head}{n}": _data for n in (range(int(_last) + 1) if _last else [""])})
AIS.update({f"{f}{n}": (_Part("n", 6, 6, "", False),) for f in MEASURES for n in range(6)})
del _row, _ai, _spec, _title, _data, _head, _last
CURRENCIES: dict[str, str] = {item[3:]: item[:3] for item in _CURRENCY_TABLE.split()}
COUNTRIES = frozenset(_COUNTRY_TABLE.split())
N_FAMILIES = frozenset([*MEASURES, "390", "391", "392", "393", "395"])
DEFAULT_MONEY = MoneyConfig()  # EUR, cents: a parser not told the shop's currency
_GS1_SYMBOLOGIES = {"]C1", "]e0", "]d2", "]Q3", "]J1"}
# GS1 character set 82 (the an.. fields)
_CSET82 = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]*")


def parse_gs1_date(value: str, today: date | None = None) -> date:
    """YYMMDD with GS1's century window and DD = 00 meaning the month's last day."""
    if len(value) != 6 or not value.isdigit():
        raise ValueError(i18n._("date {value!r} is not YYMMDD", value=value))
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
        raise ValueError(i18n._("date {value!r} has month {mm}", value=value, mm=format(mm, "02d")))
    last = calendar.monthrange(year, mm)[1]
    if dd == 0:
        dd = last
    if dd > last:
        raise ValueError(i18n._("date {value!r} has day {dd}", value=value, dd=format(dd, "02d")))
    return date(year, mm, dd)


def _ai_at(text: str, pos: int, raw: str) -> str:
    for size in (2, 3, 4):
        candidate = text[pos : pos + size]
        if candidate in AIS:
            return candidate
    head = text[pos : pos + 4]
    if not head[:2].isdigit() or len(head) < 2:
        raise BarcodeError(raw, i18n._("expected an application identifier at {head!r}", head=head))
    if head[:3] in N_FAMILIES:
        raise BarcodeError(raw, i18n._("unsupported application identifier ({head})", head=head))
    raise BarcodeError(raw, i18n._("unsupported application identifier ({head}..)", head=head[:2]))


def _family_of(ai: str) -> str:
    """3103 -> 310 (the family whose last digit counts decimals); other AIs as they are."""
    return ai[:3] if len(ai) == 4 and ai[:3] in N_FAMILIES else ai


def _length(parts: tuple[_Part, ...]) -> int:
    return sum(part.most for part in parts)


def _sizes(parts: tuple[_Part, ...]) -> str:
    """How long an AI's data must be, in words: "14 digits", "at least 4 digits",
    "6 or 12 digits", "8, 10 or 12 digits"."""
    unit = "digits" if all(part.kind == "n" for part in parts) else "characters"
    least = sum(part.least for part in parts if not part.optional)
    if parts[-1].least != parts[-1].most:
        return f"at least {least} {unit}"
    sizes = [least]
    for part in parts:
        if part.optional:
            sizes.append(sizes[-1] + part.most)
    words = ", ".join(map(str, sizes[:-1]))
    return f"{words} or {sizes[-1]} {unit}" if words else f"{least} {unit}"


_TIME_LIMITS = {"hhmi": (23, 59), "hh": (23,), "mi": (59,), "ss": (59,)}


def _check_part(ai: str, part: _Part, piece: str, raw: str) -> None:
    check = part.check
    if check == "csum" and check_digit(piece[:-1]) != piece[-1]:
        raise BarcodeError(raw, i18n._("bad check digit in AI ({ai})", ai=ai))
    if check in ("date", "yymmdd"):
        try:
            parse_gs1_date(piece)
        except ValueError as exc:
            raise BarcodeError(
                raw, i18n._("bad date in AI ({ai}): {error}", ai=ai, error=exc)
            ) from None
        if check == "yymmdd" and piece[4:] == "00":
            raise BarcodeError(
                raw, i18n._("bad date in AI ({ai}): date {piece!r} has day 00", ai=ai, piece=piece)
            )
    limits = _TIME_LIMITS.get(check, ())  # HH, MM, SS: two digits each
    if any(int(piece[2 * index :][:2]) > most for index, most in enumerate(limits)):
        raise BarcodeError(raw, i18n._("bad time in AI ({ai}): {piece!r}", ai=ai, piece=piece))
    if check == "country" and piece not in COUNTRIES:
        raise BarcodeError(
            raw, i18n._("AI ({ai}) has an unknown country code {piece}", ai=ai, piece=piece)
        )
    if check == "currency" and piece not in CURRENCIES:
        raise BarcodeError(
            raw, i18n._("AI ({ai}) has an unknown currency code {piece}", ai=ai, piece=piece)
        )
    if check == "count" and int(piece) == 0:
        raise BarcodeError(raw, i18n._("AI ({ai}) counts no items", ai=ai))


def _check_ai_value(ai: str, value: str, raw: str) -> None:
    parts = AIS[ai]
    if not value:
        raise BarcodeError(raw, i18n._("empty AI ({ai})", ai=ai))
    if len(value) > _length(parts):
        raise BarcodeError(
            raw,
            i18n._("AI ({ai}) is longer than {length} characters", ai=ai, length=_length(parts)),
        )
    pos = 0
    for part in parts:
        if pos == len(value) and part.optional:
            break
        piece = value[pos : pos + part.most]
        if len(piece) < part.least:
            raise BarcodeError(
                raw,
                i18n._(
                    "truncated AI ({ai}): needs {sizes}, got {count}",
                    ai=ai,
                    sizes=_sizes(parts),
                    count=len(value),
                ),
            )
        if part.kind == "n" and not (piece.isascii() and piece.isdigit()):
            raise BarcodeError(raw, i18n._("AI ({ai}) must be digits", ai=ai))
        if part.kind == "x" and not _CSET82.fullmatch(piece):
            raise BarcodeError(raw, i18n._("AI ({ai}) has characters outside the GS1 set", ai=ai))
        _check_part(ai, part, piece, raw)
        pos += len(piece)


def _read_ais(text: str, raw: str) -> list[tuple[str, str]]:
    """The transmitted form: predefined-length AIs by their length, the others up to
    the next FNC1 (a missing FNC1 shows as a field too long or of the wrong kind)."""
    found = []
    text = text.lstrip(GS)
    pos = 0
    while pos < len(text):
        ai = _ai_at(text, pos, raw)
        pos += len(ai)
        if ai[:2] in PREDEFINED:
            value = text[pos : pos + _length(AIS[ai])]
            pos += len(value)
            if pos < len(text) and text[pos] == GS:
                pos += 1  # a redundant FNC1 after a predefined-length field is allowed
        else:
            end = text.find(GS, pos)
            end = len(text) if end < 0 else end
            value = text[pos:end]
            pos = end + 1
        found.append((ai, value))
    return found


def _read_printed(text: str, raw: str) -> list[tuple[str, str]]:
    """The printed form "(01)09501101530003(10)ABC"."""
    parts = re.findall(r"\((\d{2,4})\)([^(]*)", text)
    if "".join(f"({a}){v}" for a, v in parts) != text:
        raise BarcodeError(raw, i18n._("malformed (AI)value text"))
    for ai, _ in parts:
        if ai not in AIS:
            raise BarcodeError(raw, i18n._("unsupported application identifier ({ai})", ai=ai))
    return parts


def _bounded(element: Gs1Element, raw: str, money: MoneyConfig) -> None:
    """The shop's currency and the numbers' documented bounds (kiosk/numbers.py)."""
    found = element._family(*CURRENCY_FAMILIES)
    if found is not None and element.currency != money.currency:
        what = i18n._("price") if found[0][:3] in PRICES else i18n._("amount")
        code = found[1][:3]
        raise BarcodeError(
            raw,
            i18n._(
                "{what} in {currency} ({code}), the shop sells in {shop_currency}",
                what=what,
                currency=element.currency,
                code=code,
                shop_currency=money.currency,
            ),
        )
    try:
        # (395n) and (8005) have 6 digits: always within MAX_MONEY.
        for what, value in ((N_("price"), element.price), (N_("amount"), element.amount_payable)):
            if value is not None:
                numbers.money(f"{value:f}", what, money.minor_unit)  # 1E-9 shown as 0.000000001
        if element.weight_kg is not None:
            numbers.cart_quantity(element.weight_kg, "kg", N_("net weight (kg)"))
        if element.count is not None:
            numbers.whole(element.count, N_("count"), minimum=1, maximum=numbers.MAX_STOCK_QTY)
    except numbers.NumberError as exc:
        raise BarcodeError(raw, i18n.text_of(exc)) from None


def parse_element_string(
    text: str, raw: str | None = None, money: MoneyConfig | None = None
) -> Gs1Element:
    """Parse "0195012345678903" + GS + "10ABC" (or the "(01)...(10)ABC" printed form);
    amounts in a currency are accepted in `money`'s currency only (default: EUR)."""
    raw = text if raw is None else raw
    ais: dict[str, str] = {}
    pairs = _read_printed(text, raw) if text.startswith("(") else _read_ais(text, raw)
    for ai, value in pairs:
        _check_ai_value(ai, value, raw)
        if ai in ais:
            raise BarcodeError(raw, i18n._("AI ({ai}) appears twice", ai=ai))
        ais[ai] = value
    if not ais:
        raise BarcodeError(raw, i18n._("empty GS1 element string"))
    families = [_family_of(ai) for ai in ais]
    if any(sum(family in group for family in families) > 1 for group in _ONE_OF):
        raise BarcodeError(raw, i18n._("more than one weight or price AI"))
    for family in families:
        if families.count(family) > 1:
            raise BarcodeError(raw, i18n._("AI ({family}n) appears twice", family=family))
    if "01" in ais and "02" in ais:
        raise BarcodeError(raw, i18n._("AI (01) and (02) together"))
    element = Gs1Element(ais)
    _bounded(element, raw, money or DEFAULT_MONEY)
    return element


def element_string(ais: dict[str, str]) -> str:
    """The transmitted form: FNC1 after every AI not of predefined length, unless last."""
    out = []
    items = list(ais.items())
    for index, (ai, value) in enumerate(items):
        out.append(ai + value)
        if ai[:2] not in PREDEFINED and index < len(items) - 1:
            out.append(GS)
    return "".join(out)


# ---------------------------------------------------------------- parser


class BarcodeParser:
    """`money`: the shop's currency and minor unit, which GS1 prices and amounts must
    use (Ledger passes config.money; without it, EUR in cents)."""

    def __init__(self, config: BarcodeConfig | None = None, money: MoneyConfig | None = None):
        self.config = config or BarcodeConfig()
        self.money = money or DEFAULT_MONEY
        self._layouts: dict[str, VariableMeasureLayout] = {
            layout.prefix: layout for layout in self.config.variable_measure
        }

    def parse(self, raw: str) -> Parsed:
        if not isinstance(raw, str):
            raise BarcodeError(str(raw), i18n._("not text"))
        text = raw.strip(" \r\n\t")
        if not text:
            raise BarcodeError(raw, i18n._("empty scan"))
        symbology = None
        if text.startswith("]") and len(text) >= 3:
            symbology, text = text[:3], text[3:]
            if not text:
                raise BarcodeError(raw, i18n._("symbology identifier with no data"))
        if any(ord(c) < 32 and c != GS or ord(c) == 127 for c in text):
            raise BarcodeError(
                raw, i18n._("control characters in scan (check the scanner's setup)")
            )
        if symbology in _GS1_SYMBOLOGIES or GS in text or text.startswith("("):
            return parse_element_string(text, raw, self.money)
        if text.isdigit():
            return self._numeric(text, raw, symbology)
        return self._prefixed(text, raw)

    def _prefixed(self, text: str, raw: str) -> Parsed:
        cfg = self.config
        if text.startswith(cfg.receipt_prefix):
            number = text[len(cfg.receipt_prefix) :]
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*-\d{6,}", number):
                raise BarcodeError(raw, i18n._("malformed receipt number"))
            return ReceiptRef(number)
        if text.startswith(cfg.staff_prefix):
            code = text[len(cfg.staff_prefix) :]
            if not re.fullmatch(r"[A-Za-z0-9]{1,16}", code):
                raise BarcodeError(raw, i18n._("malformed staff badge"))
            return StaffBadge(code)
        if text.startswith(cfg.sku_prefix):
            sku = text[len(cfg.sku_prefix) :]
            if not SKU_RE.fullmatch(sku):
                raise BarcodeError(raw, i18n._("malformed internal SKU code"))
            return InternalSku(sku)
        raise BarcodeError(raw, i18n._("unknown barcode format"))

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
                raise BarcodeError(raw, i18n._("bad check digit"))
        if n in (6, 7, 8):
            return self._upce(digits, raw)
        if n == 12:
            if not is_valid_gtin(digits):
                raise BarcodeError(raw, i18n._("bad check digit"))
            return Gtin(digits.zfill(14), "UPC-A")
        if n == 13:
            return self._ean13(digits, raw)
        if n == 14:
            if not is_valid_gtin(digits):
                raise BarcodeError(raw, i18n._("bad check digit"))
            if digits[0] == "9":
                raise BarcodeError(
                    raw, i18n._("variable-measure GTIN-14 needs a GS1-128 weight or price")
                )
            if digits[0] == "0":
                return self._numeric(digits[1:], raw, symbology)
            return Gtin(digits, "GTIN-14")
        if n >= 16 and digits[:2] in ("01", "02"):
            return parse_element_string(digits, raw, self.money)  # GS1-128, no FNC1 in it
        raise BarcodeError(raw, i18n._("truncated or unknown code ({n} digits)", n=n))

    def _upce(self, digits: str, raw: str) -> Gtin:
        if len(digits) == 6:
            digits = "0" + digits
        if digits[0] not in "01":
            raise BarcodeError(raw, i18n._("UPC-E number system must be 0 or 1"))
        if len(digits) == 7:
            body = expand_upce(digits + "0")[:-1]
            upca = with_check_digit(body)
        else:
            upca = expand_upce(digits)
            if not is_valid_gtin(upca):
                raise BarcodeError(raw, i18n._("bad check digit"))
        return Gtin(upca.zfill(14), "UPC-E")

    def _ean13(self, digits: str, raw: str) -> Parsed:
        if not is_valid_gtin(digits):
            raise BarcodeError(raw, i18n._("bad check digit"))
        prefix = digits[:2]
        if prefix == "99" or digits[:3] in ("981", "982", "983", "984", "985"):
            raise BarcodeError(raw, i18n._("unknown prefix (a coupon code)"))
        layout = self._layouts.get(prefix)
        if layout is None:
            return Gtin(digits.zfill(14), "EAN-13")
        item = digits[2 : 2 + layout.item_digits]
        pos = 2 + layout.item_digits
        value_digits = digits[pos + (1 if layout.value_check else 0) : 12]
        if layout.value_check and _price_check_digit(value_digits) != digits[pos]:
            raise BarcodeError(raw, i18n._("bad price check digit"))
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
        raise ValueError(
            i18n._(
                "{value} does not fit in {value_digits} digits",
                value=value,
                value_digits=layout.value_digits,
            )
        )
    check = _price_check_digit(value_text) if layout.value_check else ""
    return with_check_digit(f"{layout.prefix}{item.zfill(layout.item_digits)}{check}{value_text}")
