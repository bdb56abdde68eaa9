"""The ZVT encoder and decoder against byte sequences of the specification and of a
public implementation's test suite (Portalum.Zvt, MIT; its facts, not its code)."""

from __future__ import annotations

import pytest

from kiosk.drivers.zvt import codec
from kiosk.drivers.zvt.codec import Apdu, ZvtError


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace("-", " "))


# ------------------------------------------------------------------ APDUs


def test_apdu_length_forms():
    assert codec.decode_apdu(h("04 0F 01 6C")) == (Apdu(0x04, 0x0F, b"\x6c"), 4)
    assert codec.decode_apdu(h("04 0F FF 01 00 6C")) == (Apdu(0x04, 0x0F, b"\x6c"), 6)
    assert codec.apdu_size(h("04 0F FF 00 01")) == 5 + 256
    assert codec.apdu_size(h("04 0F FF FF FF")) == 5 + 65535
    assert codec.decode_apdu(h("04 0F")) is None  # header incomplete
    assert codec.decode_apdu(h("04 0F 06 00 01 02 03")) is None  # 6 announced, 4 there
    long = bytes(300)
    encoded = codec.encode_apdu(0x06, 0xD3, long)
    assert encoded[:5] == h("06 D3 FF 2C 01")
    assert codec.decode_apdu(encoded) == (Apdu(0x06, 0xD3, long), 305)


def test_bcd_and_variable_lengths():
    assert codec.bcd(123456, 3) == h("12 34 56")
    assert codec.bcd(1234, 3) == h("00 12 34")
    assert codec.bcd(978, 2) == h("09 78")
    assert codec.from_bcd(h("09 78")) == 978
    with pytest.raises(ZvtError):
        codec.bcd(12345678, 3)
    with pytest.raises(ZvtError):
        codec.from_bcd(h("0A"))
    assert codec.var_length(h("F0 F1 F9"), 3) == 19
    assert codec.var_length(h("F1 F8 F9"), 3) == 189
    assert codec.var_length(h("F1 F8"), 2) == 18
    assert codec.var_length(h("F1 F0"), 2) == 10
    assert codec.encode_var(b"x" * 14, 3) == h("F0 F1 F4") + b"x" * 14


# ------------------------------------------------------------------ commands


def test_authorization_bytes():
    # 10.00 EUR, as in Portalum's PaymentAsync test (amount only)
    assert codec.authorization(1000).encode() == h("06 01 07 04 00 00 00 00 10 00")
    assert codec.authorization(2040, 978).encode() == h("06 01 0A 04 00 00 00 00 20 40 49 09 78")
    # the largest amount the 6 BCD bytes hold
    assert codec.authorization(123456789000).data[1:] == h("12 34 56 78 90 00")


def test_registration_bytes():
    # config byte B6: the register prints payment and administration receipts, controls
    # payment and administration, receipts as print lines/blocks (Portalum's default)
    config = (
        codec.ECR_PRINTS_PAYMENT
        | codec.ECR_PRINTS_ADMIN
        | codec.ECR_CONTROLS_PAYMENT
        | codec.ECR_CONTROLS_ADMIN
        | codec.ECR_PRINT_TYPE
    )
    assert config == 0xB6
    apdu = codec.registration("000000", config | codec.ECR_WANTS_STATUS, 978)
    assert apdu.encode() == h("06 00 10 00 00 00 BE 09 78 03 01 06 06 26 04 0A 02 06 D3")
    plain = codec.registration("123456", 0xB6, 978, None, permit_text_blocks=False)
    assert plain.encode() == h("06 00 06 12 34 56 B6 09 78")
    with pytest.raises(ZvtError, match="6 digits"):
        codec.registration("12345", 0xB6)


def test_administration_commands():
    assert codec.reversal("000000", 42).encode() == h("06 30 06 00 00 00 87 00 42")
    assert codec.reversal("000000").encode() == h("06 30 03 00 00 00")
    assert codec.refund("000000", 250).encode() == h("06 31 0A 00 00 00 04 00 00 00 00 02 50")
    assert codec.end_of_day("000000").encode() == h("06 50 03 00 00 00")
    assert codec.repeat_receipt("000000").encode() == h("06 20 03 00 00 00")
    assert codec.abort().encode() == h("06 B0 00")
    assert codec.log_off().encode() == h("06 02 00")
    assert codec.diagnosis().encode() == h("06 70 00")
    assert codec.status_enquiry("000000").encode() == h("05 01 03 00 00 00")


# ------------------------------------------------------------------ status information


APPROVED = h(
    "04 0F 77 27 00 04 00 00 00 00 20 40 0B 00 04 70 0C 22 39 53 0D 10 06 0E 25 12 17 00 01"
    " 19 70 22 F0 F8 EE EE EE EE EE EE 47 71 29 28 00 48 69 2A 31 30 30 34 36 31 37 36 33 20"
    " 20 20 20 20 20 3B 36 31 31 38 30 34 00 00 3C F0 F1 F4 47 45 4E 2E 4E 52 2E 3A 36 31 31"
    " 38 30 34 49 09 78 87 04 70 88 00 04 70 8A 2E 8B F1 F7 44 65 62 69 74 20 4D 61 73 74 65"
    " 72 63 61 72 64 00"
)


def test_status_information_of_an_approved_payment():
    apdu, _ = codec.decode_apdu(APPROVED)
    info = codec.parse_status(apdu.data)
    assert info.result == 0
    assert info.amount == 2040 and info.currency == 978
    assert info.trace == 470 and info.receipt_no == 470 and info.turnover_no == 470
    assert info.terminal_id == "28004869"
    assert info.vu == "100461763"
    assert info.approval == "611804"
    assert info.text == "GEN.NR.:611804"
    assert info.card_name == "Debit Mastercard" and info.card_type == 0x2E
    assert info.time == "223953" and info.date == "1006"
    # the masked number (22) and the expiry date (0E) never leave the decoder
    assert "4771" not in repr(info) and "2512" not in repr(info)
    assert 0x22 not in codec.parse_bmps(apdu.data) and 0x0E not in codec.parse_bmps(apdu.data)


def test_status_information_with_tlv_and_an_abort_by_the_customer():
    tlv = h(
        "04-0F-65-27-00-0C-23-13-55-0D-10-29-0E-99-99-22-F0-F8-EE-EE-EE-EE-EE-EE-47-71-A0-01"
        "-29-00-00-00-06-87-00-08-0B-00-00-00-8A-06-8B-F1-F1-4D-41-53-54-45-52-43-41-52-44-00"
        "-06-2E-2F-08-1F-12-01-02-1F-10-01-00-60-1B-43-07-A0-00-00-00-04-10-10-44-10-44-65-62"
        "-69-74-20-4D-61-73-74-65-72-63-61-72-64-1F-2B-04-10-01-50-08"
    )
    info = codec.parse_status(codec.decode_apdu(tlv)[0].data)
    assert info.card_name == "MASTERCARD" and info.terminal_id == "00000006"
    assert info.receipt_no == 8 and info.result_as == 1
    fields = codec.parse_bmps(codec.decode_apdu(tlv)[0].data)
    assert [t.value for t in codec.find_tlv(fields[0x06], 0x1F12)] == [b"\x02"]
    aborted = h(
        "04 0F 1E 27 6C 29 28 00 48 69 3C F0 F1 F9 41 62 62 72 75 63 68 20 64 75 72 63 68 20"
        " 4B 75 6E 64 65"
    )
    info = codec.parse_status(codec.decode_apdu(aborted)[0].data)
    assert info.result == codec.ABORTED and info.text == "Abbruch durch Kunde"
    assert codec.result_text(info.result) == "aborted by timeout or the abort key"
    declined = h(
        "04-0F-25-27-05-29-29-00-02-74-3C-F0-F0-F9-41-62-67-65-6C-65-68-6E-74-8A-06-06-0D-24"
        "-0B-07-09-41-62-67-65-6C-65-68-6E-74"
    )
    info = codec.parse_status(codec.decode_apdu(declined)[0].data)
    assert (info.result, info.text, info.terminal_id) == (5, "Abgelehnt", "29000274")


def test_intermediate_status():
    assert codec.parse_intermediate(h("0A")).kind == "insert_card"
    assert codec.parse_intermediate(h("01 1E")).kind == "pin"
    assert codec.parse_intermediate(h("4B")).kind == "remove_card"
    assert codec.parse_intermediate(h("55")).kind == "remove_card"  # wrong PIN + remove card
    assert codec.parse_intermediate(h("1D")).kind == "declined"
    texts = h("FF 10 06 1A 24 18 07 08 45 55 52 20 31 2E 32 33 07 0C 42 69 74 74 65 20 77 61 72")
    texts += h("74 65 6E")
    info = codec.parse_intermediate(texts)
    assert info.timeout == 0x10 and info.texts == ("EUR 1.23", "Bitte warten")


# ------------------------------------------------------------------ receipts


def test_print_lines_with_and_without_receipt_type():
    line = codec.parse_print_line(h("40 2A 2A 20 4B 41 53 53 45 4E 53 43 48 4E 49 54 54 20 2A 2A"))
    assert (line.text, line.receipt_type, line.last) == ("** KASSENSCHNITT **", None, False)
    line = codec.parse_print_line(
        h("40 2A 2A 20 48 C4 4E 44 4C 45 52 42 45 4C 45 47 20 2A 2A 06 04 1F 07 01 01")
    )
    assert line.receipt_type == 1 and line.text.startswith("** H")
    last = codec.parse_print_line(h("81 06 04 1F 07 01 02"))
    assert last.last and last.text == "" and last.receipt_type == 2
    umlaut = codec.parse_print_line(h("00 66 81 72"))
    assert umlaut.text == "für"  # code page 437


def test_print_text_block_of_an_administration_receipt():
    block = h(
        "06-D3-AC-06-81-A9-1F-07-01-03-25-81-A2-07-1B-30-32-2E-31-31-2E-32-30-32-31-20-20-20"
        "-20-20-20-20-20-20-31-37-3A-30-35-3A-30-32-07-0C-54-49-44-3A-41-48-30-30-30-30-30-36"
        "-07-14-41-62-73-63-68-6C-75-73-73-20-2D-20-6B-65-69-6E-65-20-54-58-07-19-20-41-56-3A"
        "-20-2B-30-34-2E-30-37-20-28-4A-75-6E-20-31-31-20-32-30-32-31-29-07-1B-54-49-3A-20-45"
        "-20-44-54-3A-20-30-2F-30-2F-20-4F-46-3A-20-30-2F-30-2F-20-43-47-3A-07-0F-20-20-20-20"
        "-20-20-20-20-20-20-20-31-2F-30-2F-07-01-20-07-01-20-07-01-20-07-01-20-07-01-20-07-01"
        "-20-07-01-20-09-01-81"
    )
    apdu, used = codec.decode_apdu(block)
    assert used == len(block)
    parsed = codec.parse_print_block(apdu.data)
    assert parsed.receipt_type == 3
    assert parsed.lines[0] == "02.11.2021         17:05:02"
    assert "Abschluss - keine TX" in parsed.lines


def test_tlv_tags_and_lengths():
    assert codec.parse_tlv(h("1F 07 01 02")) == (codec.Tlv(0x1F07, b"\x02"),)
    assert codec.parse_tlv(h("1F 80 00 00"))[0].tag == 0x1F8000
    assert codec.ber_length(h("82 02 8A")) == (650, 3)
    assert codec.ber_length(h("81 A9")) == (0xA9, 2)
    assert codec.encode_tlv(0x1F07, b"\x01") == h("1F 07 01 01")
    nested = codec.parse_tlv(h("25 05 07 03 61 62 63"))
    assert nested[0].children == (codec.Tlv(0x07, b"abc"),)
    with pytest.raises(ZvtError):
        codec.parse_tlv(h("07 05 61"))  # runs past the data


def test_unknown_and_truncated_fields_are_refused():
    with pytest.raises(ZvtError, match="unknown BMP"):
        codec.parse_bmps(h("27 00 FE 01"))
    with pytest.raises(ZvtError, match="runs past"):
        codec.parse_bmps(h("04 00 00"))


# ------------------------------------------------------------------ serial framing


def test_crc_and_framing():
    assert codec.crc16(b"123456789") == 0x2189  # CRC-16/KERMIT's check value
    framed = codec.frame(h("80 00 00"))
    assert framed[:2] == h("10 02") and framed[-4:-2] == h("10 03")
    assert codec.unframe(framed) == (h("80 00 00"), len(framed))
    escaped = codec.frame(h("06 D1 02 00 10"))  # a DLE in the data is doubled
    assert h("10 10") in escaped
    assert codec.unframe(escaped + b"\x06")[0] == h("06 D1 02 00 10")
    assert codec.unframe(framed[:-1]) is None
    with pytest.raises(ZvtError, match="checksum"):
        codec.unframe(framed[:-1] + bytes((framed[-1] ^ 1,)))
