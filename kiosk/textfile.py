"""Reading text files people hand us (catalogs, replay scripts, site files, configs).

They must be UTF-8 (a byte-order mark is allowed and dropped). Anything else is
refused with one line naming the file, the line and the column of the first bad
byte, instead of a UnicodeDecodeError traceback.
"""

from __future__ import annotations

from pathlib import Path


class TextFileError(ValueError):
    """A file that is not UTF-8 text; the message names the file and the line."""


def decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        text, offset = exc.object, exc.start  # after the byte-order mark, if any
        line = text.count(b"\n", 0, offset) + 1
        column = offset - (text.rfind(b"\n", 0, offset) + 1) + 1
        byte = text[offset : offset + 1].hex()
        raise TextFileError(
            f"{source}: line {line}: not UTF-8 text (byte 0x{byte} at column {column}); "
            "save the file as UTF-8"
        ) from None


def read_text(path: Path) -> str:
    """The file's text; OSError (missing, unreadable) passes through for the caller."""
    return decode(Path(path).read_bytes(), str(path))
