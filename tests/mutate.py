"""Mutation testing of the core with mutmut (`./dev.sh mutate [GROUP ...]`).

Each group mutates a few modules and runs only the tests that belong to them (mutmut
then narrows that down per function to the tests that call it), in its own copy of
this checkout, so the work tree is never touched and other test runs are not
disturbed. Prints killed / survived / other per group and the score; exit 1 when a
group scores below --min (default 90 %).

  ./dev.sh mutate                 every group, one after the other
  ./dev.sh mutate money sales     some groups
  ./dev.sh mutate --list          the groups, their modules and tests
  ./dev.sh mutate --survivors     also list each survivor (then: mutmut show NAME in
                                  the group's folder shows its diff)
  ./dev.sh mutate --head          the last commit instead of the work tree

Work folders: $KIOSK_MUTATE_DIR (default /tmp/kiosk-mutate)/GROUP; a summary of the
last run of each group in GROUP/summary.json. Not part of the default test run."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Group:
    modules: tuple[str, ...]
    tests: tuple[str, ...]
    # mutmut mutant-name patterns (fnmatch): only these functions, when not all
    only: tuple[str, ...] = field(default=())
    # more pytest arguments for the test selection (-k to leave out slow tests whose
    # checks the group's fast tests make too)
    args: tuple[str, ...] = field(default=())


GROUPS: dict[str, Group] = {
    "money": Group(("kiosk/ledger/money.py",), ("tests/test_money.py", "tests/test_oracles.py")),
    "barcodes": Group(
        ("kiosk/ledger/barcodes.py",),
        ("tests/test_barcodes.py", "tests/test_oracles.py"),
    ),
    "sales": Group(
        ("kiosk/ledger/sales.py",),
        ("tests/test_sales.py", "tests/test_oracles.py", "tests/test_mut_ledger.py"),
    ),
    "stock": Group(("kiosk/ledger/stock.py",), ("tests/test_stock.py", "tests/test_mut_ledger.py")),
    "catalog": Group(
        ("kiosk/ledger/catalog_csv.py",),
        ("tests/test_catalog_csv.py", "tests/test_mut_catalog.py"),
    ),
    "staff": Group(
        ("kiosk/ledger/staff.py",),
        ("tests/test_staff.py", "tests/test_oracles.py", "tests/test_mut_staff.py"),
        args=("-k", "staff or pin or lock or login or key"),
    ),
    # The checkout core: the cart and the selling path (scan, quantities, lines, paying,
    # tenders, the commit, cancelling) in core.py, selling.py and paying.py, not the staff
    # flows (kiosk/checkout/flows/) or the card terminal around it.
    "checkout": Group(
        (
            "kiosk/checkout/cart.py",
            "kiosk/checkout/core.py",
            "kiosk/checkout/selling.py",
            "kiosk/checkout/paying.py",
        ),
        # test_payment_checkout: paying.py's card path (a terminal's approval, decline,
        # cancel and reversal) is the payment flow's, tested there against the simulator
        ("tests/test_checkout.py", "tests/test_mut_checkout.py", "tests/test_payment_checkout.py"),
        only=(
            "kiosk.checkout.cart.*",
            *(
                f"kiosk.checkout.{module}.x\u01c1{mixin}\u01c1{name}__mutmut_*"
                for module, mixin, names in (
                    ("core", "CheckoutCore", ("totals", "scan")),
                    (
                        "selling",
                        "SellingMixin",
                        (
                            "_sale_scan",
                            "_add_line",
                            "quantity",
                            "set_quantity",
                            "_set_qty",
                            "remove_line",
                            "cancel",
                            "_abandon",
                        ),
                    ),
                    (
                        "paying",
                        "PayingMixin",
                        (
                            "amount_due",
                            "_payable_total",
                            "pay",
                            "_start_paying",
                            "tender_cash",
                            "tender_card",
                            "_tender",
                            "_due_text",
                            "cancel_payment",
                            "_commit",
                        ),
                    ),
                )
                for name in names
            ),
        ),
    ),
    # The staff flows on the stock: counting, receiving, kit building and the stock lines
    # they share (scans, cases, the pad's typed quantities). Returns and the staff menu
    # (flows/returns.py, staff.py) are not in it.
    "flows": Group(
        (
            "kiosk/checkout/flows/counting.py",
            "kiosk/checkout/flows/receiving.py",
            "kiosk/checkout/flows/kits.py",
            "kiosk/checkout/flows/stock_lines.py",
        ),
        (
            "tests/test_staff_pad.py",
            "tests/test_checkout.py",
            "tests/test_mut_flows.py",
            # the Hypothesis run over every flow's typed numbers (10 s a mutant) is left
            # out: test_staff_pad.py writes the same bounds out
            "tests/test_hostile_input.py::"
            "test_no_transaction_makes_a_stock_event_the_controller_would_refuse",
        ),
    ),
    # Stock sync: the contract's parsers, the controller's store and its apply path.
    "mqtt": Group(
        ("kiosk/mqtt/topics.py", "kiosk/mqtt/store.py", "kiosk/mqtt/controller.py"),
        (
            "tests/test_controller_store.py",
            "tests/test_controller_hostile.py",
            "tests/test_mut_mqtt.py",
            "tests/test_fast_path.py",  # the fast path of topics.py, the careful parser its oracle
            # stores made by the code of each earlier schema (tests/fixtures), migrated
            "tests/test_update_schemas.py::test_controller_store_of_every_schema_migrates",
        ),
        only=(
            "kiosk.mqtt.topics.*",
            "kiosk.mqtt.store.*",
            *(
                f"kiosk.mqtt.controller.x\u01c1Controller\u01c1{name}__mutmut_*"
                for name in ("apply_batch", "_apply", "_dead_letter", "_last_resort", "_parse")
            ),
        ),
        # PostgreSQL, a real broker and the long Hypothesis run: their checks are the
        # same bookkeeping the fast tests pin down, at minutes per mutant.
        args=("-k", "not postgresql and not mosquitto and not no_payload_stops"),
    ),
}


def copy_checkout(target: Path, head: bool = False) -> None:
    """This checkout's files as they are now (tracked and new ones, with their edits),
    or with `head` as the last commit has them."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    if head:
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO, capture_output=True,
                                 check=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        return
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout  # fmt: skip
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if not source.is_file():
            continue  # deleted in the work tree
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)


def toml_list(values) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def configure(work: Path, group: Group) -> None:
    # a test file, or one test in it (file::name)
    tests = [t for t in group.tests if (work / t.split("::")[0]).exists()] + list(group.args)
    settings = f"""
[tool.mutmut]
source_paths = ["kiosk"]
only_mutate = {toml_list(group.modules)}
pytest_add_cli_args_test_selection = {toml_list(tests)}
pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "no:randomly", "-q"]
# log calls and their messages are not behaviour the tests pin down
do_not_mutate_patterns = ["log\\\\.(debug|info|warning)\\\\("]
"""
    with open(work / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(settings)


KILLED = ("killed", "timeout", "segfault")  # a mutant that hangs or crashes the tests is caught
COUNTED = (*KILLED, "survived", "suspicious", "no tests")  # "no tests": nothing noticed it


def score_parts(counts: Counter) -> tuple[int, int]:
    return sum(counts[k] for k in KILLED), sum(counts[k] for k in COUNTED)


def results(work: Path, python: str) -> dict[str, str]:
    shown = subprocess.run(
        [python, "-m", "mutmut", "results", "--all", "true"],
        cwd=work, capture_output=True, text=True,
    )  # fmt: skip
    out = {}
    for line in shown.stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            out[name] = status
    return out


def run_group(
    name: str, group: Group, root: Path, children: int, keep: bool, head: bool = False
) -> dict:
    python = sys.executable
    work = root / name
    started = time.monotonic()
    if not (keep and (work / "mutants").exists()):
        copy_checkout(work, head)
        configure(work, group)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("KIOSK_CONFIG", None)
    log = work / "mutmut.log"
    with open(log, "w", encoding="utf-8") as out:
        done = subprocess.run(
            [python, "-m", "mutmut", "run", "--max-children", str(children), *group.only],
            cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    statuses = results(work, python)
    if group.only:
        from fnmatch import fnmatch

        statuses = {k: v for k, v in statuses.items() if any(fnmatch(k, p) for p in group.only)}
    counts = Counter(statuses.values())
    killed, tested = score_parts(counts)
    summary = {
        "group": name,
        "modules": list(group.modules),
        "tests": list(group.tests),
        "mutants": len(statuses),
        "counts": dict(counts),
        "score": round(100 * killed / tested, 1) if tested else 0.0,
        "survivors": sorted(k for k, v in statuses.items() if v == "survived"),
        "untested": sorted(k for k, v in statuses.items() if v == "no tests"),
        "seconds": round(time.monotonic() - started),
        "mutmut_exit": done.returncode,
        "log": str(log),
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev.sh mutate", description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help=f"some of: {' '.join(GROUPS)}")
    parser.add_argument("--list", action="store_true", help="show the groups and stop")
    parser.add_argument("--survivors", action="store_true", help="list every survivor")
    parser.add_argument("--keep", action="store_true", help="reuse a group's earlier results")
    parser.add_argument("--head", action="store_true", help="the last commit, not the work tree")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--min", type=float, default=90.0, help="lowest score that passes")
    args = parser.parse_args(argv)
    if args.list:
        for name, group in GROUPS.items():
            print(f"{name:9} {' '.join(group.modules)}\n{'':9} tests: {' '.join(group.tests)}")
        return 0
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group {unknown[0]!r}: choose from {', '.join(GROUPS)}")
    root = Path(os.environ.get("KIOSK_MUTATE_DIR", "/tmp/kiosk-mutate"))
    failed = False
    total = Counter()
    for name in args.groups or list(GROUPS):
        print(f"mutate: {name} ({' '.join(GROUPS[name].modules)}) ...", flush=True)
        s = run_group(name, GROUPS[name], root, args.jobs, args.keep, args.head)
        counts = s["counts"]
        total.update(counts)
        print(
            f"mutate: {name}: {s['score']} % killed ({counts.get('killed', 0)} killed, "
            f"{counts.get('timeout', 0)} timeout, {counts.get('survived', 0)} survived, "
            f"{counts.get('no tests', 0)} no tests, {s['mutants']} mutants) in {s['seconds']} s",
            flush=True,
        )
        if args.survivors:
            for survivor in s["survivors"]:
                print(f"    survived: {survivor}")
            for untested in s["untested"]:
                print(f"    no tests: {untested}")
        if s["score"] < args.min or s["mutmut_exit"] not in (0, None):
            failed = True
            if s["mutmut_exit"]:
                print(f"mutate: {name}: mutmut exited {s['mutmut_exit']}; see {s['log']}")
    killed, tested = score_parts(total)
    if tested:
        print(f"mutate: all: {round(100 * killed / tested, 1)} % killed of {tested} tested")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
