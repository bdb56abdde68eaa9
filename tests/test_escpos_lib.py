"""kiosk/escpos_lib.py: python-escpos's printer profiles from a cache that outlives the
process (python-escpos's own default is a new temporary folder per process)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import yaml

from kiosk import escpos_lib


def test_the_cache_holds_what_python_escpos_itself_reads(tmp_path):
    made = escpos_lib.warm_cache(tmp_path / "escpos")
    assert made is not None and made.name.endswith(".capabilities.pickle")
    source = escpos_lib._profiles_file()
    with open(source, encoding="utf-8") as text:
        assert pickle.loads(made.read_bytes()) == yaml.safe_load(text)  # escpos's own loader
    assert made.stat().st_mtime >= source.stat().st_mtime
    assert [p.name for p in made.parent.iterdir()] == [made.name]  # no half-written leftovers
    assert escpos_lib.warm_cache(tmp_path / "escpos") == made  # found again, not rewritten


def test_python_escpos_takes_the_cache_instead_of_parsing_its_profiles(tmp_path):
    """Even the first process: the cache is made from the JSON before escpos looks."""
    folder = tmp_path / "kiosk" / "escpos"  # the kiosk's cache folder (XDG_CACHE_HOME)
    probe = (
        "import logging; logging.basicConfig(level=logging.DEBUG)\n"
        "from kiosk import escpos_lib\n"
        "print(len(escpos_lib.capabilities()['profiles']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={**{k: v for k, v in os.environ.items() if k != escpos_lib.PICKLE_DIR},
             "XDG_CACHE_HOME": str(tmp_path), "HOME": str(tmp_path)},  # (an earlier test
        # in this process may have pointed python-escpos at the user's cache already)
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"Loading capabilities from pickle in {folder}" in result.stderr, result.stderr
    assert int(result.stdout) > 30  # every printer python-escpos knows


def test_a_cache_a_power_cut_left_empty_or_cut_short_is_made_again(tmp_path):
    made = escpos_lib.warm_cache(tmp_path)
    whole = made.read_bytes()
    for broken in (b"", whole[: len(whole) // 2]):
        made.write_bytes(broken)
        assert escpos_lib.warm_cache(tmp_path) == made
        assert made.read_bytes() == whole


def test_a_folder_that_cannot_be_written_leaves_python_escpos_to_its_own_way(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert escpos_lib.warm_cache(blocker / "escpos") is None
