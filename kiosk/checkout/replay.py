"""Session scripts: replaying them through the Checkout, and logging sessions as them.

One JSON object per line, one action each, e.g. {"scan": "4006381333931"},
{"pay": {"cash": "20.00"}}, {"staff": "1234"}. The app logs its own sessions in this
format (PINs never: a logged login is {"staff": {"code": "S1"}}), so a customer's
problem can be replayed against a copy of the ledger. See README, "Replay format".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from kiosk import numbers
from kiosk.checkout.session import Checkout, Outcome
from kiosk.drivers.base import MemoryPrinter, PrinterError

MAX_LINE_CHARS = 100_000
MAX_DEPTH = 8  # an action needs 3 (return > lines > line)


class ReplayError(Exception):
    """A line that is not a valid action: its number and what is wrong."""


class ExpectationFailed(Exception):
    """An {"expect": ...} line did not hold."""


class ReplayClock:
    """Real time plus whatever {"idle": seconds} lines skipped ahead."""

    def __init__(self, now: Callable[[], datetime]):
        self._now = now
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return self._now() + self.offset

    def advance(self, seconds: Decimal | int) -> None:
        """Skip ahead exactly (a Decimal of seconds, microseconds at most: no float)."""
        self.offset += timedelta(microseconds=int(Decimal(seconds) * 1_000_000))


class SessionLog:
    """Appends each action the Checkout performs, one JSON line each, flushed."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives with the app

    def __call__(self, entry: dict) -> None:
        self._file.write(json.dumps(entry, separators=(",", ":"), default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class Step:
    line: int
    action: str
    outcome: Outcome


def _field(value: Any, key: str, required: bool = True, default: Any = None) -> Any:
    if not isinstance(value, dict):
        raise ReplayError(f"expects an object with {key!r}")
    if key not in value:
        if required:
            raise ReplayError(f"needs {key!r}")
        return default
    found = value[key]
    if key in TEXT_FIELDS and not (found is None and not required) and not isinstance(found, str):
        raise ReplayError(f"{key} must be text, not {type(found).__name__}")
    return found


def _text(value: Any, what: str) -> str:
    """An action's own value that must be text (an SKU)."""
    if not isinstance(value, str):
        raise ReplayError(f"{what} expects text, not {type(value).__name__}")
    return value


def _staff(co: Checkout, value: Any) -> Outcome:
    if isinstance(value, str | int):
        return co.staff_login(pin=str(value))
    if _field(value, "failed", required=False):
        return Outcome(False, "a failed login (from a session log)")
    return co.staff_login(pin=_field(value, "pin", False), code=_field(value, "code", False))


def _pay(co: Checkout, value: Any) -> Outcome:
    if value == "start":
        return co.pay()
    if value == "cancel":
        return co.cancel_payment()
    if isinstance(value, dict) and "cash" in value:
        return co.tender_cash(value["cash"])
    if isinstance(value, dict) and "card" in value:
        return co.tender_card(value["card"], value.get("ref"))
    if isinstance(value, dict) and "terminal" in value:
        if co.terminal.kind == "manual":
            raise ReplayError("a terminal payment needs a terminal: kiosk replay --terminal sim")
        return co.tender_card(value["terminal"])  # followed to its end (see replay)
    raise ReplayError(
        'pay expects "start", "cancel", {"cash": ...}, {"card": ..., "ref": ...} '
        'or {"terminal": ...}'
    )


def _terminal(co: Checkout, value: Any) -> Outcome:
    """Drive the replay's simulated terminal: what its next payments and refunds do
    ({"terminal": {"plan": ["decline"], "refund_plan": ["decline"]}}), or settle
    unsettled payments with it ({"terminal": "recover"})."""
    if co.terminal.kind == "manual":
        raise ReplayError("needs a terminal: kiosk replay --terminal sim")
    if value == "recover":
        return co.recover_payments()
    simulator = getattr(co, "terminal_simulator", None)
    if not isinstance(value, dict) or not value.keys() <= {"plan", "refund_plan"} or not value:
        raise ReplayError('terminal expects "recover" or {"plan": [...], "refund_plan": [...]}')
    if simulator is None:
        raise ReplayError("plans need the simulated terminal (kiosk replay --terminal sim)")
    for key, method in (("plan", simulator.plan), ("refund_plan", simulator.plan_refund)):
        plans = value.get(key, [])
        plans = [plans] if isinstance(plans, str) else plans
        if not isinstance(plans, list) or not all(isinstance(p, str) for p in plans):
            raise ReplayError(f"terminal {key} expects a list of plan names")
        method(*plans)
    return Outcome(True, f"terminal plans: {json.dumps(value, separators=(',', ':'))}")


def _refund(co: Checkout, value: Any) -> Outcome:
    actions = {"retry": co.retry_refund, "cash": co.refund_cash, "cancel": co.cancel_refund}
    if value not in actions:
        raise ReplayError(f"refund expects one of {', '.join(actions)}")
    return actions[value]()


def _payments(co: Checkout, value: Any) -> Outcome:
    if value == "list":
        return co.list_payments()
    if value == "retry":
        return co.retry_payments()
    if isinstance(value, dict) and "resolve" in value:
        return co.resolve_payment(value["resolve"], str(_field(value, "reason")))
    raise ReplayError('payments expects "list", "retry" or {"resolve": N, "reason": "..."}')


def _start(co: Checkout, value: Any, entry: dict) -> Outcome:
    flows = {
        "return": lambda: co.start_return(entry.get("receipt")),
        "count": co.start_count,
        "receiving": lambda: co.start_receiving(entry.get("reference")),
        "kit": lambda: co.start_kit(_field(entry, "sku")),
    }
    if value not in flows:
        raise ReplayError(f"start expects one of {', '.join(flows)}")
    return flows[value]()


def _finish(co: Checkout, value: Any, entry: dict) -> Outcome:
    flows = {
        "return": lambda: co.finish_return(entry.get("reason", "unwanted")),
        "count": co.finish_count,
        "receiving": co.finish_receiving,
    }
    if value not in flows:
        raise ReplayError(f"finish expects one of {', '.join(flows)}")
    return flows[value]()


def _steps(outcomes: Iterable[Outcome]) -> Outcome:
    """A composite line is ok when every step was; it reports the first refusal."""
    last = Outcome(True, "")
    for outcome in outcomes:
        if not outcome.ok:
            return outcome
        last = outcome
    return last


def _return(co: Checkout, value: Any) -> Outcome:
    lines = _field(value, "lines")
    if not isinstance(lines, list) or not lines:
        raise ReplayError("return needs a non-empty list of lines")

    def run() -> Iterator[Outcome]:
        yield co.start_return(_field(value, "receipt", required=False))
        for line in lines:
            yield co.return_item(
                _field(line, "sku"), _field(line, "qty", False, "1"),
                _field(line, "condition", False, "resaleable"),
            )  # fmt: skip
        for code in _field(value, "exchange", False, []):
            yield co.exchange_item(str(code))
        yield co.finish_return(_field(value, "reason", False, "unwanted"))

    return _steps(run())


def _count(co: Checkout, value: Any) -> Outcome:
    if not isinstance(value, dict) or not value:
        raise ReplayError('count expects {"SKU": quantity, ...}')

    def run() -> Iterator[Outcome]:
        yield co.start_count()
        for sku, qty in value.items():
            yield co.set_count(sku, qty)
        yield co.finish_count()

    return _steps(run())


def _receive(co: Checkout, value: Any) -> Outcome:
    lines = _field(value, "lines")

    def run() -> Iterator[Outcome]:
        yield co.start_receiving(_field(value, "reference", False))
        for line in lines:
            yield co.receive_item(_field(line, "sku"), _field(line, "qty"))
        yield co.finish_receiving()

    return _steps(run())


def _kit(co: Checkout, value: Any) -> Outcome:
    def run() -> Iterator[Outcome]:
        yield co.start_kit(_field(value, "sku"))
        yield co.build_kit(
            _field(value, "qty", False, 1), _field(value, "lot", False), bool(value.get("force"))
        )

    return _steps(run())


def _reprint(co: Checkout, value: Any) -> Outcome:
    if value == "failed":
        return co.reprint_failed()
    return co.reprint(None if value is True else str(value))


def _printer(co: Checkout, value: Any) -> Outcome:
    if not isinstance(co.printer, MemoryPrinter):
        raise ReplayError("printer faults can only be simulated on the replay printer")
    if value == "ok":
        co.printer.fail_with = None
    elif value in ("paper_out", "offline"):
        co.printer.fail_with = PrinterError(value.replace("_", " "), value)
    else:
        raise ReplayError('printer expects "ok", "paper_out" or "offline"')
    return Outcome(True, f"printer {value}")


def _line(value: Any) -> int:
    return numbers.whole(value, "line", minimum=1, maximum=numbers.MAX_LINE)


def _idle(co: Checkout, value: Any, clock: ReplayClock | None) -> Outcome:
    if isinstance(value, str) or not isinstance(value, int | float):
        raise ReplayError("idle expects a number of seconds")
    seconds = numbers.decimal(value, "idle seconds", maximum=numbers.MAX_IDLE_S, floats=True)
    if clock is None:
        raise ReplayError("idle needs the replay clock")
    clock.advance(seconds)
    outcome = co.tick()
    return outcome or Outcome(True, f"{value} s idle")


ACTIONS: dict[str, Callable[..., Outcome]] = {
    "scan": lambda co, v, e, c: co.scan(str(v)),
    "qty": lambda co, v, e, c: co.quantity(v),
    "set_qty": lambda co, v, e, c: co.set_quantity(_line(_field(v, "line")), _field(v, "qty")),
    "remove": lambda co, v, e, c: co.remove_line(_line(v)),
    "lookup": lambda co, v, e, c: co.lookup(str(v)),
    "add": lambda co, v, e, c: co.add_item(_field(v, "sku"), _field(v, "qty", False, "1")),
    "help": lambda co, v, e, c: co.call_staff(),
    "staff": lambda co, v, e, c: _staff(co, v),
    "logout": lambda co, v, e, c: co.staff_logout(),
    "menu": lambda co, v, e, c: co.staff_menu(),
    "approve": lambda co, v, e, c: co.approve(),
    "override": lambda co, v, e, c: co.override_price(_line(_field(v, "line")), _field(v, "price")),
    "discount": lambda co, v, e, c: co.discount(
        _field(v, "line", False), _field(v, "percent", False), _field(v, "amount", False)
    ),
    "pay": lambda co, v, e, c: _pay(co, v),
    "receipt": lambda co, v, e, c: co.choose_receipt(v == "print"),
    "cancel": lambda co, v, e, c: co.cancel(),
    "start": lambda co, v, e, c: _start(co, v, e),
    "finish": lambda co, v, e, c: _finish(co, v, e),
    "return_item": lambda co, v, e, c: co.return_item(
        _field(v, "sku"), _field(v, "qty", False, "1"), _field(v, "condition", False, "resaleable")
    ),
    "exchange_scan": lambda co, v, e, c: co.exchange_item(str(v)),
    "set_count": lambda co, v, e, c: co.set_count(_field(v, "sku"), _field(v, "qty")),
    "receive_item": lambda co, v, e, c: co.receive_item(_field(v, "sku"), _field(v, "qty")),
    "select_line": lambda co, v, e, c: co.select_stock_line(_text(v, "select_line")),
    "line_qty": lambda co, v, e, c: co.set_stock_line(_field(v, "sku"), _field(v, "qty")),
    "remove_sku": lambda co, v, e, c: co.remove_stock_line(_text(v, "remove_sku")),
    "build": lambda co, v, e, c: co.build_kit(
        _field(v, "qty", False, 1), _field(v, "lot", False), bool(_field(v, "force", False))
    ),
    "return": lambda co, v, e, c: _return(co, v),
    "void": lambda co, v, e, c: co.void(
        _field(v, "receipt"), _field(v, "reason", False, "post_void")
    ),
    "count": lambda co, v, e, c: _count(co, v),
    "receive": lambda co, v, e, c: _receive(co, v),
    "kit": lambda co, v, e, c: _kit(co, v),
    "reprint": lambda co, v, e, c: _reprint(co, v),
    "report": lambda co, v, e, c: co.end_of_day(e.get("float", "0")),
    "printer": lambda co, v, e, c: _printer(co, v),
    "idle": lambda co, v, e, c: _idle(co, v, c),
    "terminal": lambda co, v, e, c: _terminal(co, v),
    "refund": lambda co, v, e, c: _refund(co, v),
    "payments": lambda co, v, e, c: _payments(co, v),
}
# Fields that are text (an SKU, a receipt number, a reason ...): never a list or number.
TEXT_FIELDS = {"sku", "receipt", "reason", "condition", "lot", "reference", "ref", "code", "pin"}
# Keys that qualify an action rather than name one.
QUALIFIERS = {"receipt", "reference", "sku", "reason", "float"}


def _check(co: Checkout, last: Outcome | None, expected: Any) -> None:
    if not isinstance(expected, dict):
        raise ReplayError("expect needs an object")
    snap = co.snapshot()
    for key, want in expected.items():
        if key == "ok":
            have = last.ok if last else None
        elif key == "message":
            have = co.message
            if str(want).lower() not in have.lower():
                raise ExpectationFailed(f"expected the message to contain {want!r}, got {have!r}")
            continue
        elif key == "lines":
            have = len(snap["lines"])
        elif key in snap:
            have = snap[key]
        else:
            raise ReplayError(f"cannot expect {key!r}")
        if str(have) != str(want) and have != want:
            raise ExpectationFailed(f"expected {key} {want!r}, got {have!r}")


def _substitute(value: Any, tokens: dict[str, str]) -> Any:
    """Fill {last_sale} (the last sale's receipt number) into hand-written scripts."""
    if isinstance(value, str):
        for token, text in tokens.items():
            value = value.replace("{" + token + "}", text)
        return value
    if isinstance(value, dict):
        return {key: _substitute(item, tokens) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, tokens) for item in value]
    return value


def parse_line(number: int, text: str) -> dict | None:
    text = text.strip()
    if not text or text.startswith("#"):
        return None
    if len(text) > MAX_LINE_CHARS:
        raise ReplayError(f"line {number}: longer than {MAX_LINE_CHARS} characters")
    try:
        entry = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"line {number}: not JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number, nesting 10,000 deep
        raise ReplayError(f"line {number}: not a usable JSON line ({str(exc)[:80]})") from None
    if not isinstance(entry, dict) or not entry:
        raise ReplayError(f"line {number}: expected a JSON object with one action")
    if _depth(entry) > MAX_DEPTH:
        raise ReplayError(f"line {number}: nested deeper than {MAX_DEPTH} levels")
    for key in (QUALIFIERS - {"float"}) & entry.keys():
        if key == "receipt" and len(entry) == 1:
            continue  # {"receipt": "print"} is the action itself
        if entry[key] is not None and not isinstance(entry[key], str):
            raise ReplayError(f"line {number}: {key} must be text")
    return entry


def _depth(value: Any) -> int:
    """How deeply lists and objects nest, counted without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            todo.extend(
                (child, level + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def replay(
    co: Checkout,
    lines: Iterable[str],
    clock: ReplayClock | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> list[Step]:
    """Run each line through the checkout. A bad line raises ReplayError naming its
    number; a failed expectation raises ExpectationFailed; refusals are outcomes."""
    steps: list[Step] = []
    last: Outcome | None = None
    tokens: dict[str, str] = {}
    for number, text in enumerate(lines, start=1):
        entry = parse_line(number, text)
        if entry is None:
            continue
        if co.last_posted is not None and co.last_posted.kind in ("sale", "exchange"):
            tokens["last_sale"] = co.last_posted.number
        if tokens:
            entry = _substitute(entry, tokens)
        if "expect" in entry:
            try:
                _check(co, last, entry["expect"])
            except ExpectationFailed as exc:
                raise ExpectationFailed(f"line {number}: {exc}") from None
            except ReplayError as exc:
                raise ReplayError(f"line {number}: {exc}") from None
            continue
        actions = [key for key in entry if key in ACTIONS]
        if "receipt" in entry and len(actions) > 1:
            actions.remove("receipt")
        unknown = [key for key in entry if key not in ACTIONS and key not in QUALIFIERS]
        if len(actions) != 1 or unknown:
            names = ", ".join(unknown or actions) or "none"
            raise ReplayError(f"line {number}: expected one known action, got {names}")
        action = actions[0]
        try:
            last = ACTIONS[action](co, entry[action], entry, clock)
        except ReplayError as exc:
            raise ReplayError(f"line {number}: {action}: {exc}") from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ReplayError(f"line {number}: {action}: bad value ({exc})") from None
        if co.terminal_job is not None:  # a card payment, refund or end of day: its end
            last = co.terminal_wait()
        step = Step(number, action, last)
        steps.append(step)
        if on_step:
            on_step(step)
    return steps
