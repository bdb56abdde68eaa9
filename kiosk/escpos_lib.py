"""python-escpos, imported with its printer profiles read from a cache that lasts.

On import python-escpos reads every printer's profile (its capabilities.json, ~1 MB)
with PyYAML's pure-Python parser and keeps the result as a pickle in
ESCPOS_CAPABILITIES_PICKLE_DIR, which defaults to a directory made anew for each
process: the cache is never found again. That parse is 0.3 s on the development machine
and tens of seconds of an emulated Pi's boot (the app with a USB printer imports it
before its window opens). Here the profiles are read once with the json module (the
file is JSON) into a pickle in the kiosk's own cache folder, written whole and then
renamed into place (a second process never reads half of one), and python-escpos is
pointed there. The only module that imports python-escpos.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import tempfile
from functools import cache
from pathlib import Path
from types import ModuleType

import platformdirs

PICKLE_DIR = "ESCPOS_CAPABILITIES_PICKLE_DIR"


def _profiles_file() -> Path:
    from importlib.resources import files  # noqa: PLC0415

    return Path(str(files("escpos") / "capabilities.json"))


def _pickle_name() -> str:
    """python-escpos's own name for its cache (escpos/capabilities.py)."""
    return f"{platform.python_version()}.capabilities.pickle"


def warm_cache(folder: Path) -> Path | None:
    """The profiles' pickle in `folder`, newer than the profiles file (what python-escpos
    checks), made if missing or stale; None when `folder` cannot be written."""
    source = _profiles_file()
    target = folder / _pickle_name()
    try:
        if _usable(target, source):
            return target
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        profiles = json.loads(source.read_text(encoding="utf-8"))
        with tempfile.NamedTemporaryFile("wb", dir=folder, delete=False) as out:
            try:
                pickle.dump(profiles, out, protocol=2)
                out.flush()
                # On disk before the rename: after a power cut the cache is whole or
                # absent (ext4 may otherwise keep the new name with no data: an empty
                # pickle, which python-escpos fails to import).
                os.fsync(out.fileno())
            except BaseException:
                os.unlink(out.name)
                raise
        os.replace(out.name, target)
    except OSError:
        return None
    return target


def _usable(target: Path, source: Path) -> bool:
    """A cache python-escpos will take (newer than the profiles) and can read: an empty
    or cut-short file (a power cut before this module synced its writes) is made again."""
    if not target.exists() or target.stat().st_mtime < source.stat().st_mtime:
        return False
    size = target.stat().st_size
    with open(target, "rb") as cached:
        cached.seek(max(size - 1, 0))
        return size > 0 and cached.read(1) == pickle.STOP  # every pickle ends with STOP


@cache
def _prepared() -> None:
    if PICKLE_DIR not in os.environ:
        folder = Path(platformdirs.user_cache_dir("kiosk")) / "escpos"
        if warm_cache(folder) is not None:
            os.environ[PICKLE_DIR] = str(folder)


def capabilities() -> dict:
    """Every printer profile and code page python-escpos knows (its CAPABILITIES)."""
    _prepared()
    from escpos.capabilities import CAPABILITIES  # noqa: PLC0415

    return CAPABILITIES


def get_profile(name: str):
    _prepared()
    from escpos.capabilities import get_profile as escpos_get_profile  # noqa: PLC0415

    return escpos_get_profile(name)


def printers() -> ModuleType:
    """escpos.printer: Usb, Serial, Network, File, Dummy."""
    _prepared()
    from escpos import printer  # noqa: PLC0415

    return printer
