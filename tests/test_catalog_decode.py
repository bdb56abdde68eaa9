"""The kiosk's fast check of an item master transfer decides exactly as the
record-by-record rules: same records and digests when it accepts, same refusal
(naming the item and the reason) otherwise."""

from __future__ import annotations

import json
import zlib

import pytest

from kiosk.config import parse
from kiosk.ledger.money import TaxPolicy
from kiosk.mqtt import catalog_sync, master

POLICY = TaxPolicy.from_config(parse("").money)
TAX = sorted(POLICY.rates)


def good(i: int) -> list:
    return [f"SKU{i:04d}", f"Item {i}", f"{1 + i % 7}.{i % 100:02d}", TAX[i % len(TAX)], "each",
            "" if i % 3 else "0.1234", i % 2, "", i % 19, f"0200000000{i:04d}*1;X{i}*12", "",
            i % 4]  # fmt: skip


def kit(i: int) -> list:
    return [f"KIT{i}", "A kit", "9.99", TAX[0], "each", "", 1, "bundle", 0, "",
            "SKU0001*2;SKU0002*1", 3]  # fmt: skip


def both(lines: list[bytes]):
    """What decode answers, and what the record-by-record rules answer."""
    body = zlib.compress(b"\n".join(lines))
    out = []
    for run in (lambda: catalog_sync.decode(body, POLICY),
                lambda: catalog_sync._decode_each(lines, POLICY)):  # fmt: skip
        try:
            out.append(run())
        except catalog_sync.CatalogError as exc:
            out.append(("refused", str(exc)))
    return out


BASE = [good(i) for i in range(40)] + [kit(1)]

BAD_VALUES = {
    0: ["", " SKU", "SKU\n2", "S" * 33, 5, None, "SKU0003", "É"],
    1: ["", "x" * 121, "a\nb", 3, ["n"]],
    2: [
        "",
        "1e2",
        "01.00",
        "1.001",
        "10000000.00",
        "-1",
        " 1.00",
        "1.",
        ".5",
        "1.0\n2",
        1.5,
        "9999999.99",
        "0",
        "٣",
    ],
    3: ["Z", "", ["A"], {"A": 1}, None],
    4: ["KG", "", 1],
    5: ["0.12345", "1e1", " ", "1.5\n", 0, "0.0001"],
    6: [True, False, 2, -1, 1.0, "1", None],
    7: ["kit", "bundle", None],
    8: [-1, 100, 99, True, 1.0, "5"],
    9: [
        "0200000000*0",
        "A*10001",
        "A",
        "A*1;A*2",
        ";",
        "A*1;",
        "A*+2",
        "A*01",
        "A*1\nB*1",
        "A*1" + ";B*1" * 1200,
        7,
    ],
    10: ["SKU0001*1", "SKU0001", "x"],
    11: [-1, 2**31, 2**31 - 1, False, 1.0],
}


@pytest.mark.parametrize(
    "field,value", [(f, v) for f, values in BAD_VALUES.items() for v in values]
)
def test_one_field_changed_decides_alike(field, value):
    records = [list(r) for r in BASE]
    records[17][field] = value
    fast, each = both([master.record_bytes(r) for r in records])
    assert fast == each


@pytest.mark.parametrize("field", range(12))
def test_a_kit_field_changed_decides_alike(field):
    for value in ([], "SKU0001*2;KIT1*1", "", "SKU0001*0", "assembled", 0):
        records = [list(r) for r in BASE]
        records[-1][field] = value
        fast, each = both([master.record_bytes(r) for r in records])
        assert fast == each


@pytest.mark.parametrize(
    "change",
    [
        lambda ls: ls + [b""],
        lambda ls: [b" " + ls[0]] + ls[1:],
        lambda ls: [ls[0] + b" "] + ls[1:],
        lambda ls: [ls[0] + b"," + ls[1]] + ls[2:],
        lambda ls: [ls[0][:-1], b"0]"] + ls[1:],
        lambda ls: [b"\xef\xbb\xbf" + ls[0]] + ls[1:],
        lambda ls: [ls[0].replace(b"Item", b"\xff")] + ls[1:],
        lambda ls: [json.dumps(json.loads(ls[0])).encode()] + ls[1:],
        lambda ls: ls + [ls[3]],
        lambda ls: [b"[" * 5000 + b"]" * 5000] + ls,
        lambda ls: [b"NaN"] + ls,
        lambda ls: [b"{}"] + ls,
        lambda ls: [b"[1,2]"] + ls,
        lambda ls: ls[:5] + [b"x" * (16 * 1024 + 1)] + ls[5:],
    ],
)
def test_lines_changed_decide_alike(change):
    fast, each = both(change([master.record_bytes(r) for r in BASE]))
    assert fast == each


def test_a_good_transfer_takes_the_fast_path():
    lines = [master.record_bytes(r) for r in BASE]
    text = b"\n".join(lines)
    records, digests = catalog_sync._decode_fast(text, text.split(b"\n"), POLICY)
    assert records == BASE
    assert digests == [master.digest(r) for r in BASE]
