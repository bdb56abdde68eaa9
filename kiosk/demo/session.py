"""`kiosk run --demo`, headless: a bundled shift replayed through the Checkout.

A customer scans real barcode formats (EAN-13, a case GTIN-14, a weighed scale
label, a price-embedded label, GS1-128 with a batch, a misread), pays by card and
cash and takes a receipt; staff then do a return by receipt scan, a cycle count,
receiving and kit assembly, and print the Z report. Receipts print to the terminal.
The full-screen app drives the same Checkout.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import platformdirs

from kiosk.config import Config


def demo_ledger_path() -> Path:
    return Path(platformdirs.user_data_dir("kiosk")) / "demo-ledger.db"


def demo_script() -> list[str]:
    return (resources.files("kiosk.demo") / "shift.jsonl").read_text("utf-8").splitlines()


def run_demo(config: Config, db_path: Path | None, out: Callable[[str], None]) -> None:
    # Here, not at the top: the app's start reads only demo_ledger_path.
    from kiosk.checkout.replay_run import TerminalPrinter, run_steps  # noqa: PLC0415
    from kiosk.demo.seed import seed  # noqa: PLC0415
    from kiosk.ledger import reports  # noqa: PLC0415
    from kiosk.ledger.core import Ledger, LedgerError  # noqa: PLC0415
    from kiosk.ledger.verify import verify  # noqa: PLC0415

    path = db_path or demo_ledger_path()
    config = config.with_ledger_path(path)
    with Ledger.open(config) as ledger:
        out(f"kiosk demo: {config.device.id} at {config.device.store}, ledger {path}")
        seed(ledger, out)
        status, _ = run_steps(ledger, demo_script(), out, printer=TerminalPrinter(out))
        out("")
        out("stock after the shift (pieces; grams for kg items):")
        for row in reports.stock():
            out(f"  {row.sku:<12} {row.on_hand:>7}  {row.name}")
        problems = verify(ledger)
        out("ledger verify: " + ("ok" if not problems else "; ".join(problems)))
        if problems or status:
            raise LedgerError("the demo shift did not run cleanly")
