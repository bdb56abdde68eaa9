"""The shop controller's apply path alone: the sync bench's messages (K kiosks x N stock
events and their sales' journals) fed to Controller.apply_batch in batches of 500, on a
real SQLite store, with no broker (acknowledgements and level publishes go nowhere).

    .venv/bin/python -m bench.apply_bench [--events N] [--kiosks K] [--profile]

Prints the wall and CPU time a message (this process's CPU: parsing, checking,
deduplicating, writing, committing); --profile prints cProfile's top functions. What the
controller's process spends besides (paho's network thread) is sync_bench's to measure.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from bench.sync_bench import kiosk_names, payloads
from kiosk.config import parse
from kiosk.mqtt.controller import Controller
from kiosk.testing.ledgers import make_ledger
from kiosk.testing.mosquitto import ROOT


class NoBroker:
    """Stands in for the paho client: acknowledgements and publishes go nowhere."""

    def ack(self, *args) -> None:
        pass

    def publish(self, *args, **kwargs) -> None:
        pass


def messages(ledgers: dict[str, Path]) -> list[mqtt.MQTTMessage]:
    out = []
    for device, path in ledgers.items():
        for kind, payload in payloads(path):
            message = mqtt.MQTTMessage(len(out) + 1, f"{ROOT}/kiosk/{device}/{kind}".encode())
            message.payload, message.qos = payload, 1
            out.append(message)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="per kiosk")
    parser.add_argument("--kiosks", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ledgers = {
            d: make_ledger(root / f"{d}.db", d, args.events - 1, seed=i)
            for i, d in enumerate(kiosk_names(args.kiosks))
        }
        batch = messages(ledgers)
        config = parse('[device]\nid = "hq"\nstore = "store-042"\n')
        controller = Controller(config, str(root / "controller.db"))
        controller.client = NoBroker()
        profile = cProfile.Profile()
        wall, cpu = time.perf_counter(), time.process_time()
        if args.profile:
            profile.enable()
        for start in range(0, len(batch), 500):
            controller.apply_batch(batch[start : start + 500])
        profile.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        controller.db.close()
    print(f"{len(batch)} messages applied in {wall:.2f} s ({len(batch) / wall:.0f} msg/s); "
          f"CPU {cpu / len(batch) * 1e6:.0f} us a message")  # fmt: skip
    print(f"  stock events {controller.applied}, journal parts {controller.journals}, "
          f"dead letters {controller.dead}")  # fmt: skip
    if args.profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
