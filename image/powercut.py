"""The host's side of the boot test's power cut while selling (build.sh, boot_test).

    powercut.py bridge PORT            QEMU's guestfwd command: one guest connection <->
                                       the test's broker on 127.0.0.1:PORT
    powercut.py subscribe PORT LOG     every kiosk message on the broker, one line each:
                                       "<unix time> <retained 0|1> <topic> <payload>"
    powercut.py retained PORT TOPIC    wait (up to 20 s) for TOPIC's retained message; print it
    powercut.py verdict SELL_LOG CHECK_LOG MQTT_LOG CUT_AT KEEPALIVE
                                       what the cut proved, or why it failed (exit 1)

The guest's side is powercut.sh. A power cut leaves the kiosk's TCP connection open and
silent (no FIN from a machine without power): the guest is frozen (SIGSTOP) while the
bridge on the host holds the broker's end, so only the keepalive can tell the broker.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import sys
import time

PAID = re.compile(r"^PAID (\S+) #$")
LEDGER = re.compile(r"^LEDGER (\S+) #$")
ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def console_lines(text: str) -> list[str]:
    """The console log's lines without colours and carriage returns."""
    return [ESCAPES.sub("", line).replace("\r", "") for line in text.split("\n")]


def paid(text: str) -> list[str]:
    return [m.group(1) for line in console_lines(text) if (m := PAID.match(line))]


def ledger(text: str) -> tuple[list[str], str | None]:
    """The sales the guest found in its ledger after the cut, and verify's verdict."""
    lines = console_lines(text)
    numbers = [m.group(1) for line in lines if (m := LEDGER.match(line))]
    verdict = None
    for line in lines:
        if line in ("VERIFY ok", "VERIFY failed"):
            verdict = line.split()[1]
    return numbers, verdict


def messages(text: str) -> list[tuple[float, bool, str, dict]]:
    found = []
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4:
            try:
                found.append((float(parts[0]), parts[1] == "1", parts[2], json.loads(parts[3])))
            except ValueError:
                continue
    return found


def verdict(sell: str, check: str, mqtt: str, cut_at: float, keepalive: int) -> list[str]:
    """Problems (empty: passed); prints what was measured."""
    problems = []
    sold = paid(sell)
    found, verified = ledger(check)
    kept = set(found)
    print(f"powercut: {len(sold)} sale(s) reported paid before the cut, {len(found)} in the "
          f"ledger after it")  # fmt: skip
    if not sold:
        problems.append("no sale was reported paid before the cut")
    lost = [number for number in sold if number not in kept]
    if lost:
        problems.append(f"reported paid, missing after the cut: {' '.join(lost)}")
    if len(found) != len(kept):
        problems.append("a receipt number is in the ledger twice")
    if sold and found and not lost:
        extra = found[found.index(sold[-1]) + 1 :]
        print(f"powercut: committed after the last PAID line: {' '.join(extra) or 'none'}")
    if verified is None:
        problems.append("the guest never reported ledger verify")
    elif verified != "ok":
        problems.append("ledger verify failed after the cut")
    events = messages(mqtt)
    status = [(at, body) for at, retained, topic, body in events
              if topic.endswith("/status") and not retained]  # fmt: skip
    online = [at for at, body in status if body.get("online") is True and at < cut_at]
    if not online:
        problems.append("the host's broker never saw the kiosk online before the cut")
    offline = [at for at, body in status if body.get("online") is False and at >= cut_at]
    early = [at for at, body in status if body.get("online") is False and at < cut_at]
    if early:
        problems.append("the kiosk was reported offline before the cut")
    if not offline:
        problems.append(f"no offline status (last will) within {keepalive * 2 + 15} s of the cut")
    else:
        delay = offline[0] - cut_at
        last = max((at for at, _, topic, _ in events if at < cut_at), default=cut_at)
        print(f"powercut: last will (online: false) {delay:.1f} s after the cut, "
              f"{offline[0] - last:.1f} s after the kiosk's last message; "
              f"keepalive {keepalive} s")  # fmt: skip
        if delay < keepalive / 2:
            problems.append(f"offline {delay:.1f} s after the cut: the connection was closed, "
                            "not silent (not what a power cut does)")  # fmt: skip
        if delay > keepalive * 1.5 + 15:
            problems.append(f"offline only {delay:.1f} s after the cut (keepalive {keepalive} s)")
    published = {body.get("txn") for _, _, topic, body in events if topic.endswith("/stock")}
    published.discard(None)
    unknown = sorted(published - kept)
    print(f"powercut: {len(published)} sale(s) reached the host's broker before the cut")
    if unknown:
        problems.append(f"sent to the broker, missing after the cut: {' '.join(unknown)}")
    return problems


def bridge(port: int) -> None:
    # stdin and stdout are the guest's connection (libslirp's guestfwd "cmd:"); stderr
    # too, so nothing may be written there.
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    broker = socket.create_connection(("127.0.0.1", port))
    while True:
        ready, _, _ = select.select([0, broker], [], [])
        for source in ready:
            data = os.read(0, 65536) if source == 0 else broker.recv(65536)
            if not data:
                return
            if source == 0:
                broker.sendall(data)
            else:
                os.write(1, data)


def _client():
    import paho.mqtt.client as mqtt  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    return mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)


def subscribe(port: int, log: str) -> None:
    with open(log, "a", buffering=1) as out:
        client = _client()

        def on_connect(client, _userdata, _flags, _reason, _properties):
            client.subscribe("shop/+/kiosk/#", qos=1)

        def on_message(_client, _userdata, message):
            payload = message.payload.decode("utf-8", "replace")
            out.write(f"{time.time():.3f} {int(message.retain)} {message.topic} {payload}\n")

        client.on_connect = on_connect
        client.on_message = on_message
        client.connect("127.0.0.1", port)
        client.loop_forever(retry_first_connection=True)


def retained(port: int, topic: str) -> int:
    got = []
    client = _client()
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_message = lambda _c, _u, m: got.append(m) if m.retain else None
    client.connect("127.0.0.1", port)
    client.loop_start()
    deadline = time.monotonic() + 20
    while not got and time.monotonic() < deadline:
        time.sleep(0.1)
    client.loop_stop()
    if not got:
        print(f"powercut: no retained message on {topic}", file=sys.stderr)
        return 1
    print(got[0].payload.decode())
    return 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "bridge" and len(argv) == 2:
        bridge(int(argv[1]))
        return 0
    if command == "subscribe" and len(argv) == 3:
        subscribe(int(argv[1]), argv[2])
        return 0
    if command == "retained" and len(argv) == 3:
        return retained(int(argv[1]), argv[2])
    if command == "verdict" and len(argv) == 6:
        texts = []
        for path in argv[1:4]:
            with open(path, encoding="utf-8", errors="replace") as handle:
                texts.append(handle.read())
        problems = verdict(*texts, float(argv[4]), int(argv[5]))
        for problem in problems:
            print(f"powercut: {problem}", file=sys.stderr)
        return 1 if problems else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
