"""ZVT (the ECR interface of German, Austrian and Swiss card terminals): APDUs and their fields.

Pure bytes in, plain data out; no I/O. An APDU is a 2-byte control field (class,
instruction), a length (one byte, or FF and two bytes little-endian) and the data.
The data of most messages is a list of BMP fields (one tag byte, then a fixed-size
value, an LLVAR/LLLVAR value whose length is written as F0-F9 digits, or a BER-TLV
container under tag 06). Numbers are packed BCD; text is code page 437.

Card data: a status message can carry a masked card number (BMP 22) and an expiry
date (0E). They are read past and thrown away here, so nothing above this module
ever holds them; only references (receipt, trace and turnover numbers, terminal id,
approval code) and the card's brand name come out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kiosk import i18n
from kiosk.i18n import N_

ENCODING = "cp437"
ACK = bytes.fromhex("800000")


class ZvtError(Exception):
    """Bytes that are not a valid ZVT message; the message says what is wrong."""


# ---------------------------------------------------------------- APDU


@dataclass(frozen=True)
class Apdu:
    cls: int
    ins: int
    data: bytes = b""

    @property
    def command(self) -> bytes:
        return bytes((self.cls, self.ins))

    def encode(self) -> bytes:
        return encode_apdu(self.cls, self.ins, self.data)

    def __repr__(self) -> str:
        return f"Apdu({self.command.hex(' ')}: {self.data.hex(' ')})"


def encode_apdu(cls: int, ins: int, data: bytes = b"") -> bytes:
    if len(data) < 0xFF:
        return bytes((cls, ins, len(data))) + data
    if len(data) > 0xFFFF:
        raise ZvtError(f"APDU data of {len(data)} bytes is longer than 65535")
    return bytes((cls, ins, 0xFF)) + len(data).to_bytes(2, "little") + data


def apdu_size(buffer: bytes) -> int | None:
    """Total size of the APDU at the start of `buffer`, or None while its header is incomplete."""
    if len(buffer) < 3:
        return None
    if buffer[2] != 0xFF:
        return 3 + buffer[2]
    if len(buffer) < 5:
        return None
    return 5 + int.from_bytes(buffer[3:5], "little")


def decode_apdu(buffer: bytes) -> tuple[Apdu, int] | None:
    """The first APDU in `buffer` and the bytes it used, or None if more bytes are needed."""
    size = apdu_size(buffer)
    if size is None or len(buffer) < size:
        return None
    start = 3 if buffer[2] != 0xFF else 5
    return Apdu(buffer[0], buffer[1], bytes(buffer[start:size])), size


# ---------------------------------------------------------------- numbers


def bcd(number: int, size: int) -> bytes:
    """`number` as packed BCD in exactly `size` bytes (leading zeros)."""
    digits = str(number)
    if number < 0 or len(digits) > size * 2:
        raise ZvtError(f"{number} does not fit in {size} BCD bytes")
    return bytes.fromhex(digits.zfill(size * 2))


def from_bcd(data: bytes) -> int:
    text = data.hex()
    if not text.isdigit():
        raise ZvtError(f"not BCD: {data.hex(' ')}")
    return int(text) if text else 0


def password_bytes(password: str) -> bytes:
    if len(password) != 6 or not password.isdigit():
        raise ZvtError("the terminal password is 6 digits")
    return bytes.fromhex(password)


def var_length(data: bytes, digits: int) -> int:
    """An LLVAR (2) or LLLVAR (3) length: each byte F0-F9 is one decimal digit."""
    if len(data) < digits:
        raise ZvtError("length field cut short")
    value = 0
    for byte in data[:digits]:
        if byte & 0xF0 != 0xF0 or byte & 0x0F > 9:
            raise ZvtError(f"bad variable length byte {byte:02x}")
        value = value * 10 + (byte & 0x0F)
    return value


def encode_var(value: bytes, digits: int) -> bytes:
    length = str(len(value)).zfill(digits)
    if len(length) > digits:
        raise ZvtError(f"{len(value)} bytes do not fit an {'L' * digits}VAR")
    return bytes(0xF0 | int(d) for d in length) + value


# ---------------------------------------------------------------- BER-TLV


@dataclass(frozen=True)
class Tlv:
    tag: int  # the tag's bytes as one number: 0x1F07, 0x25, ...
    value: bytes
    children: tuple[Tlv, ...] = ()

    def find(self, tag: int) -> list[Tlv]:
        return find_tlv(self.children, tag)


def _tag(data: bytes, at: int) -> tuple[int, int, bool]:
    """Tag number, bytes used, constructed?"""
    if at >= len(data):
        raise ZvtError("TLV tag cut short")
    first = data[at]
    tag, used = first, 1
    if first & 0x1F == 0x1F:  # more tag bytes follow, the last without bit 8
        while True:
            if at + used >= len(data):
                raise ZvtError("TLV tag cut short")
            byte = data[at + used]
            tag = (tag << 8) | byte
            used += 1
            if not byte & 0x80:
                break
    return tag, used, bool(first & 0x20)


def ber_length(data: bytes, at: int = 0) -> tuple[int, int]:
    """A BER length at `at`: (length, bytes used). 0x81 xx and 0x82 xx xx are the long forms."""
    if at >= len(data):
        raise ZvtError("TLV length cut short")
    first = data[at]
    if first < 0x80:
        return first, 1
    count = first & 0x7F
    if count == 0 or count > 2 or at + 1 + count > len(data):
        raise ZvtError(f"bad TLV length {data[at : at + 1 + count].hex(' ')}")
    return int.from_bytes(data[at + 1 : at + 1 + count], "big"), 1 + count


def encode_ber_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    if length <= 0xFF:
        return bytes((0x81, length))
    return bytes((0x82,)) + length.to_bytes(2, "big")


MAX_TLV_DEPTH = 8  # the spec nests 3 deep; a terminal that nests further is refused


def parse_tlv(data: bytes, depth: int = 0) -> tuple[Tlv, ...]:
    if depth >= MAX_TLV_DEPTH:
        raise ZvtError(f"TLV nested deeper than {MAX_TLV_DEPTH} levels")
    items = []
    at = 0
    while at < len(data):
        tag, used, constructed = _tag(data, at)
        length, lused = ber_length(data, at + used)
        start = at + used + lused
        if start + length > len(data):
            raise ZvtError(f"TLV {tag:x} of {length} bytes runs past the data")
        value = bytes(data[start : start + length])
        items.append(Tlv(tag, value, parse_tlv(value, depth + 1) if constructed else ()))
        at = start + length
    return tuple(items)


def encode_tlv(tag: int, value: bytes) -> bytes:
    tag_bytes = tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")
    return tag_bytes + encode_ber_length(len(value)) + value


def find_tlv(items: tuple[Tlv, ...], tag: int) -> list[Tlv]:
    """Every item with `tag`, at any depth, in order."""
    found = []
    for item in items:
        if item.tag == tag:
            found.append(item)
        found.extend(find_tlv(item.children, tag))
    return found


# ---------------------------------------------------------------- BMP fields

LL, LLL, TLV = -2, -3, -6
BMP_SIZES = {
    0x01: 1, 0x02: 1, 0x03: 1, 0x04: 6, 0x05: 1, 0x06: TLV, 0x0B: 3, 0x0C: 3, 0x0D: 2,
    0x0E: 2, 0x17: 2, 0x19: 1, 0x22: LL, 0x23: LL, 0x24: LLL, 0x27: 1, 0x29: 4, 0x2A: 15,
    0x2D: LL, 0x2E: LLL, 0x37: 3, 0x3A: 2, 0x3B: 8, 0x3C: LLL, 0x3D: 3, 0x49: 2, 0x60: LLL,
    0x87: 2, 0x88: 3, 0x8A: 1, 0x8B: LL, 0x8C: 1, 0x92: LLL, 0x9A: LLL, 0xA0: 1, 0xA7: LL,
    0xAA: 3, 0xAF: LLL, 0xBA: 5, 0xD0: 1, 0xD1: LL, 0xD2: 1, 0xD3: 1, 0xE0: 1, 0xE1: LL,
    0xE2: LL, 0xE3: LL, 0xE4: LL, 0xE5: LL, 0xE6: LL, 0xE7: LL, 0xE8: LL, 0xE9: LL,
    0xEA: LL, 0xEB: LL, 0xEC: LL, 0xED: LL, 0xEE: LL, 0xF0: LLL, 0xF1: LL, 0xF2: LL,
    0xF3: LL, 0xF4: LL, 0xF5: LL, 0xF6: LL, 0xF7: LL, 0xF8: LL, 0xF9: LL,
}  # fmt: skip
CARD_DATA = frozenset({0x0E, 0x22, 0x23, 0x24, 0x2D, 0x3A})  # read past, never kept


def parse_bmps(data: bytes) -> dict[int, bytes | tuple[Tlv, ...]]:
    """BMP tag -> value (a TLV container's items under 0x06). Card data is dropped here."""
    fields: dict[int, bytes | tuple[Tlv, ...]] = {}
    at = 0
    while at < len(data):
        tag = data[at]
        size = BMP_SIZES.get(tag)
        if size is None:
            raise ZvtError(f"unknown BMP {tag:02x} at byte {at}")
        at += 1
        if size == TLV:
            length, used = ber_length(data, at)
            at += used
            value: bytes | tuple[Tlv, ...] = parse_tlv(bytes(data[at : at + length]))
            end = at + length
        elif size in (LL, LLL):
            digits = -size
            length = var_length(data[at:], digits)
            at += digits
            end = at + length
            value = bytes(data[at:end])
        else:
            end = at + size
            value = bytes(data[at:end])
        if end > len(data):
            raise ZvtError(f"BMP {tag:02x} runs past the data")
        if tag not in CARD_DATA:
            fields[tag] = value
        at = end
    return fields


def _text(value: bytes) -> str:
    return value.decode(ENCODING).rstrip("\x00 ").strip()


# ---------------------------------------------------------------- what the terminal says


@dataclass(frozen=True)
class StatusInfo:
    """Status information (04 0F): the result of a payment and its references."""

    result: int = 0
    amount: int | None = None  # minor units
    currency: int | None = None
    trace: int | None = None
    receipt_no: int | None = None
    turnover_no: int | None = None
    terminal_id: str | None = None
    vu: str | None = None  # the merchant's contract number with the acquirer
    approval: str | None = None  # AID authorisation attribute (BMP 3B)
    card_type: int | None = None
    card_name: str | None = None
    time: str | None = None  # hhmmss, terminal's clock
    date: str | None = None  # mmdd
    text: str | None = None  # additional text (BMP 3C)
    result_as: int | None = None


def parse_status(data: bytes) -> StatusInfo:
    f = parse_bmps(data)

    def number(tag: int) -> int | None:
        value = f.get(tag)
        return from_bcd(value) if isinstance(value, bytes) else None

    def text(tag: int) -> str | None:
        value = f.get(tag)
        return _text(value) if isinstance(value, bytes) and _text(value) else None

    name = text(0x8B)
    tlv = f.get(0x06)
    if name is None and isinstance(tlv, tuple):  # 0x44: application preferred name
        names = find_tlv(tlv, 0x44)
        name = _text(names[0].value) if names else None
    tid = f.get(0x29)
    return StatusInfo(
        result=f[0x27][0] if isinstance(f.get(0x27), bytes) else 0,
        amount=number(0x04),
        currency=number(0x49),
        trace=number(0x0B),
        receipt_no=number(0x87),
        turnover_no=number(0x88),
        terminal_id=tid.hex() if isinstance(tid, bytes) else None,
        vu=text(0x2A),
        approval=text(0x3B),
        card_type=f[0x8A][0] if isinstance(f.get(0x8A), bytes) else None,
        card_name=name,
        time=f[0x0C].hex() if isinstance(f.get(0x0C), bytes) else None,
        date=f[0x0D].hex() if isinstance(f.get(0x0D), bytes) else None,
        text=text(0x3C),
        result_as=f[0xA0][0] if isinstance(f.get(0xA0), bytes) else None,
    )


@dataclass(frozen=True)
class Intermediate:
    """Intermediate status (04 FF): what the terminal asks of the customer now."""

    code: int
    timeout: int | None = None
    texts: tuple[str, ...] = ()  # display texts sent as TLV (tag 24 / 07)

    @property
    def kind(self) -> str:
        return status_kind(self.code)


def parse_intermediate(data: bytes) -> Intermediate:
    if not data:
        raise ZvtError("intermediate status without a status byte")
    timeout = data[1] if len(data) > 1 else None
    texts: tuple[str, ...] = ()
    if len(data) > 2 and data[2] == 0x06:
        length, used = ber_length(data, 3)
        items = parse_tlv(data[3 + used : 3 + used + length])
        texts = tuple(_text(t.value) for t in find_tlv(items, 0x07))
    return Intermediate(data[0], timeout, texts)


@dataclass(frozen=True)
class PrintLine:
    """Print line (06 D1): one line of a receipt the register prints."""

    attribute: int
    text: str
    receipt_type: int | None = None  # 1 merchant, 2 customer, 3 administration

    @property
    def last(self) -> bool:  # bit 8: the receipt ends after this line
        return bool(self.attribute & 0x80)


def _trailing_tlv(data: bytes) -> int | None:
    """Where a TLV container (06 len ...) that ends exactly at the end of `data` starts."""
    for at in range(len(data) - 2, -1, -1):
        if data[at] != 0x06:
            continue
        try:
            length, used = ber_length(data, at + 1)
        except ZvtError:
            continue
        if at + 1 + used + length == len(data):
            try:
                parse_tlv(data[at + 1 + used :])
            except ZvtError:
                continue
            return at
    return None


def _receipt_type(items: tuple[Tlv, ...]) -> int | None:
    found = find_tlv(items, 0x1F07)
    return found[0].value[0] if found and found[0].value else None


def parse_print_line(data: bytes) -> PrintLine:
    if not data:
        raise ZvtError("print line without an attribute")
    body = data[1:]
    receipt_type = None
    at = _trailing_tlv(body)
    if at is not None:
        length, used = ber_length(body, at + 1)
        receipt_type = _receipt_type(parse_tlv(body[at + 1 + used :]))
        body = body[:at]
    return PrintLine(data[0], body.decode(ENCODING).rstrip(), receipt_type)


@dataclass(frozen=True)
class PrintBlock:
    """Print text block (06 D3): a whole receipt in one message."""

    receipt_type: int | None
    lines: tuple[str, ...]


def parse_print_block(data: bytes) -> PrintBlock:
    if not data or data[0] != 0x06:
        raise ZvtError("print text block without its TLV container")
    length, used = ber_length(data, 1)
    items = parse_tlv(data[1 + used : 1 + used + length])
    lines = tuple(t.value.decode(ENCODING).rstrip() for t in find_tlv(items, 0x07))
    return PrintBlock(_receipt_type(items), lines)


# ---------------------------------------------------------------- commands (ECR -> PT)

# Registration config byte (bit values)
ECR_PRINTS_PAYMENT = 0x02  # the register prints payment receipts (PT sends them)
ECR_PRINTS_ADMIN = 0x04  # ... and administration receipts
ECR_WANTS_STATUS = 0x08  # intermediate status information to the register
ECR_CONTROLS_PAYMENT = 0x10  # no payment started from the terminal's keys
ECR_CONTROLS_ADMIN = 0x20
ECR_PRINT_TYPE = 0x80  # receipts come as print lines / text blocks
CURRENCIES = {  # ISO 4217 numeric codes of the currencies DACH terminals settle in
    "EUR": 978, "CHF": 756, "GBP": 826, "USD": 840, "CZK": 203, "DKK": 208, "HUF": 348,
    "PLN": 985, "SEK": 752, "NOK": 578,
}  # fmt: skip


def registration(
    password: str,
    config_byte: int,
    currency: int | None = 978,
    service_byte: int | None = 0x01,
    permit_text_blocks: bool = True,
) -> Apdu:
    """Registration (06 00): password, config byte, currency, service byte, and a TLV
    container listing 06 D3 (print text block) among the commands the register accepts."""
    data = password_bytes(password) + bytes((config_byte,))
    if currency is not None:
        data += bcd(currency, 2)
    if service_byte is not None:
        data += bytes((0x03, service_byte))
    if permit_text_blocks:
        data += (
            bytes((0x06,)) + encode_ber_length(6) + encode_tlv(0x26, encode_tlv(0x0A, b"\x06\xd3"))
        )
    return Apdu(0x06, 0x00, data)


def authorization(amount: int, currency: int | None = None, payment_type: int | None = None):
    """Authorization (06 01): the amount in minor units; currency and payment type optional."""
    data = bytes((0x04,)) + bcd(amount, 6)
    if currency is not None:
        data += bytes((0x49,)) + bcd(currency, 2)
    if payment_type is not None:
        data += bytes((0x19, payment_type))
    return Apdu(0x06, 0x01, data)


def reversal(password: str, receipt_no: int | None = None) -> Apdu:
    """Reversal (06 30) of a receipt number; without one the terminal reverses its last."""
    data = password_bytes(password)
    if receipt_no is not None:
        data += bytes((0x87,)) + bcd(receipt_no, 2)
    return Apdu(0x06, 0x30, data)


def refund(password: str, amount: int, currency: int | None = None) -> Apdu:
    data = password_bytes(password) + bytes((0x04,)) + bcd(amount, 6)
    if currency is not None:
        data += bytes((0x49,)) + bcd(currency, 2)
    return Apdu(0x06, 0x31, data)


def end_of_day(password: str) -> Apdu:
    return Apdu(0x06, 0x50, password_bytes(password))


def repeat_receipt(password: str) -> Apdu:
    """Repeat receipt (06 20): the terminal sends its last transaction again."""
    return Apdu(0x06, 0x20, password_bytes(password))


def abort() -> Apdu:
    return Apdu(0x06, 0xB0)


def log_off() -> Apdu:
    return Apdu(0x06, 0x02)


def diagnosis() -> Apdu:
    return Apdu(0x06, 0x70)


def status_enquiry(password: str) -> Apdu:
    return Apdu(0x05, 0x01, password_bytes(password))


# ---------------------------------------------------------------- meaning of codes

# Intermediate status byte -> what the customer is asked to do (a key of kiosk.strings,
# "terminal_<kind>"). 0x41-0x5D are 0x01-0x1D plus "remove the card".
_KINDS = {
    0x00: "wait", 0x01: "pin", 0x02: "pin", 0x03: "not_accepted", 0x04: "processing",
    0x05: "processing", 0x06: "processing", 0x07: "not_accepted", 0x08: "not_accepted",
    0x09: "not_accepted", 0x0A: "insert_card", 0x0B: "remove_card", 0x0C: "not_accepted",
    0x0D: "not_accepted", 0x0E: "wait", 0x0F: "processing", 0x10: "not_accepted",
    0x11: "wait", 0x12: "not_accepted", 0x13: "not_accepted", 0x14: "declined",
    0x15: "wrong_pin", 0x16: "declined", 0x17: "wait", 0x18: "wrong_pin",
    0x19: "not_accepted", 0x1A: "wait", 0x1B: "approved", 0x1C: "approved",
    0x1D: "declined", 0x28: "wait", 0x29: "wait", 0x2A: "insert_card", 0x2B: "processing",
    0x2C: "wait", 0x68: "wait", 0x6A: "pin", 0x6B: "pin", 0x6C: "pin", 0x6D: "processing",
    0xD2: "processing", 0xD3: "processing", 0xE0: "wait", 0xE1: "wait", 0xF1: "processing",
    0xF2: "processing", 0xF3: "processing",
}  # fmt: skip


def status_kind(code: int) -> str:
    if 0x41 <= code <= 0x5D:
        return "remove_card"
    return _KINDS.get(code, "wait")


RESULTS = {
    0x00: N_("approved"),
    0x05: N_("declined"),
    0x64: N_("card not readable"),
    0x65: N_("card data not present"),
    0x66: N_("processing error"),
    0x67: N_("function not permitted for ec and Maestro cards"),
    0x68: N_("function not permitted for credit and tank cards"),
    0x6A: N_("turnover file full"),
    0x6B: N_("function deactivated (terminal not registered)"),
    0x6C: N_("aborted by timeout or the abort key"),
    0x6E: N_("card in blocked list"),
    0x6F: N_("wrong currency"),
    0x71: N_("credit not sufficient"),
    0x72: N_("chip error"),
    0x73: N_("card data incorrect"),
    0x77: N_("end-of-day batch not possible"),
    0x78: N_("card expired"),
    0x79: N_("card not yet valid"),
    0x7A: N_("card unknown"),
    0x7D: N_("communication error"),
    0x83: N_("function not possible"),
    0x85: N_("key missing"),
    0x89: N_("wrong PIN"),
    0x9A: N_("ZVT protocol error"),
    0x9B: N_("dial-up or communication fault"),
    0x9C: N_("please wait"),
    0xA0: N_("receiver not ready"),
    0xA1: N_("remote station does not respond"),
    0xA3: N_("no connection"),
    0xB1: N_("memory full"),
    0xB2: N_("merchant journal full"),
    0xB4: N_("already reversed"),
    0xB5: N_("reversal not possible"),
    0xB7: N_("pre-authorisation incorrect"),
    0xBF: N_("supply voltage too low"),
    0xC0: N_("card locking mechanism defective"),
    0xC1: N_("merchant card locked"),
    0xC2: N_("diagnosis required"),
    0xC3: N_("maximum amount exceeded"),
    0xC4: N_("card profile invalid"),
    0xC5: N_("payment method not supported"),
    0xC6: N_("currency not applicable"),
    0xC8: N_("amount too small"),
    0xCC: N_("printer not ready"),
    0xDC: N_("card inserted"),
    0xE0: N_("remote maintenance activated"),
    0xE2: N_("card reader does not answer"),
    0xE3: N_("shutter closed"),
    0xE4: N_("terminal activation required"),
    0xF0: N_("open end-of-day batch present"),
    0xFC: N_("necessary device not present"),
    0xFE: N_("register unknown"),
    0xFF: N_("system error"),
}
ABORTED = 0x6C  # the customer pressed stop, walked away, or the register aborted


def result_text(code: int, locale: str = i18n.SOURCE_LANGUAGE) -> str:
    """The terminal's result code in words, in `locale` (English by default: logs and
    the checkout's records; the screen renders it in the customer's language)."""
    gettext = i18n.translator(locale).gettext
    if code in RESULTS:
        return gettext(RESULTS[code])
    return gettext("terminal error {code}").format(code=f"{code:02X}")


# ---------------------------------------------------------------- serial framing

DLE, STX, ETX, SACK, SNAK = 0x10, 0x02, 0x03, 0x06, 0x15


def crc16(data: bytes) -> int:
    """CRC-CCITT as ZVT's serial link uses it: polynomial 0x1021 reflected (0x8408),
    initial 0, over the APDU and the ETX; sent low byte first."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def frame(apdu: bytes) -> bytes:
    """DLE STX, the APDU with every DLE doubled, DLE ETX, CRC low and high byte."""
    crc = crc16(apdu + bytes((ETX,)))
    body = apdu.replace(bytes((DLE,)), bytes((DLE, DLE)))
    return bytes((DLE, STX)) + body + bytes((DLE, ETX)) + crc.to_bytes(2, "little")


def unframe(data: bytes) -> tuple[bytes, int] | None:
    """(APDU, bytes used) from a framed message at the start of `data`; None if incomplete.
    Raises ZvtError on a bad start or checksum."""
    if len(data) < 2:
        return None
    if data[0] != DLE or data[1] != STX:
        raise ZvtError("serial message does not start with DLE STX")
    body = bytearray()
    at = 2
    while at + 1 < len(data):
        byte = data[at]
        if byte == DLE:
            following = data[at + 1]
            if following == DLE:
                body.append(DLE)
                at += 2
                continue
            if following == ETX:
                if at + 4 > len(data):
                    return None
                crc = int.from_bytes(data[at + 2 : at + 4], "little")
                if crc != crc16(bytes(body) + bytes((ETX,))):
                    raise ZvtError("serial message with a wrong checksum")
                return bytes(body), at + 4
            raise ZvtError(f"DLE followed by {following:02x}")
        body.append(byte)
        at += 1
    return None


@dataclass
class Receipts:
    """Receipt text the terminal hands the register to print, by kind."""

    customer: list[str] = field(default_factory=list)
    merchant: list[str] = field(default_factory=list)
    administration: list[str] = field(default_factory=list)

    def add(self, receipt_type: int | None, lines) -> None:
        target = {1: self.merchant, 2: self.customer, 3: self.administration}.get(
            receipt_type or 2, self.customer
        )
        target.extend(lines)
