"""Posts sales forever, printing each receipt number once its commit has returned.

Run by test_crash.py, which kills this process with SIGKILL at random moments."""

import random
import sys
from decimal import Decimal
from pathlib import Path

from kiosk.config import parse
from kiosk.ledger import sales, stock
from kiosk.ledger.core import Ledger
from kiosk.ledger.money import Tender
from kiosk.ledger.sales import ReturnLine, SaleLine

SKUS = ["PEN", "WATER", "CHARGER", "CABLE", "TRAVEL", "COFFEE"]


def main(path: str, seed: int) -> None:
    rng = random.Random(seed)
    config = parse(f'[device]\nid = "till-01"\n[ledger]\npath = "{Path(path)}"\n')
    ledger = Ledger.open(config)
    receipts = []
    while True:
        roll = rng.random()
        if roll < 0.1 and receipts:
            posted = sales.post_return(
                ledger,
                [ReturnLine(receipts[-1][1])],
                "unwanted",
                None,
                receipt=receipts.pop()[0],
            )
        elif roll < 0.15:
            posted = stock.receive(ledger, [stock.ReceiveLine(rng.choice(SKUS), 5)], None)
        else:
            lines = [
                SaleLine(sku, Decimal(rng.randint(1, 3)))
                for sku in rng.sample(SKUS, rng.randint(1, 4))
            ]
            posted = sales.post_sale(ledger, lines, [Tender("cash", Decimal("500.00"))])
            receipts.append((posted.number, lines[0].sku))
        sys.stdout.write(f"{posted.number}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
