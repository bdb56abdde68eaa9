"""Power cut mid-sale: SIGKILL a process posting sales, many times, and check the ledger."""

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from kiosk.ledger import catalog_csv
from kiosk.ledger.core import Ledger
from kiosk.ledger.models import Txn
from kiosk.ledger.verify import verify
from tests.conftest import CATALOG

KILLS = 30
CHILD = Path(__file__).with_name("crash_child.py")


def test_sigkill_never_leaves_a_partial_sale(config):
    with Ledger.open(config) as ledger:
        catalog_csv.import_text(ledger, CATALOG)
    rng = random.Random(1234)
    committed: list[str] = []
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    for round_no in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(config.ledger.path), str(round_no)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        # Wait for a few commits (a count, not a time: a loaded machine is slower), so
        # every round kills a process that is posting, at a moment the child chooses.
        first = "".join(child.stdout.readline() for _ in range(rng.randint(1, 4)))
        assert first.endswith("\n"), "the child posted too little"
        child.send_signal(signal.SIGKILL)
        rest = child.stdout.read()
        child.wait(timeout=30)
        lines = (first + rest).split("\n")
        committed.extend(line for line in lines[:-1] if line)  # the last may be cut off
        with Ledger.open(config) as ledger:
            assert verify(ledger) == [], f"round {round_no}"
            present = {t.number for t in Txn.select(Txn.number)}
            missing = [n for n in committed if n not in present]
            assert not missing, f"round {round_no}: committed but lost: {missing[:5]}"
    assert len(committed) >= KILLS  # at least one commit reported in every round
    assert len(set(committed)) == len(committed)  # and each once
