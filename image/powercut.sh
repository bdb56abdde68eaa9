#!/bin/sh
# The boot test's power cut while selling (see build.sh, boot_test). It runs on the kiosk,
# as root, from the kernel command line (systemd.run=, kernel-command-line.service), off
# the boot partition where the test put it:
#   powercut.sh sell        once the app is up: publish the ledger's outbox to the test's
#                           broker with the kiosk's own publisher (kiosk sync: its birth
#                           status and its last will), and sell one test item without end
#                           through the checkout (kiosk replay on the kiosk's ledger, as a
#                           self-checkout: no staff login); each sale is
#                           written to the console as "PAID <receipt> #" once it is
#                           committed. The test cuts the power in the middle of this.
#   powercut.sh check       after the cut: "LEDGER <receipt> #" for every sale in the
#                           ledger (read with SQLite itself, not the app), then the
#                           ledger's own check, "VERIFY ok" or "VERIFY failed".
# Every line for the test starts with a word in capitals and PAID/LEDGER lines end in " #",
# so a line that the kernel or journald broke into is never read as another receipt.
# The environment changes where things are (tests/test_systemd.py runs it on the host).
set -eu
mode=${1:?usage: powercut.sh sell|check}
KIOSK=${KIOSK:-/opt/kiosk/venv/bin/kiosk}
PYTHON=${PYTHON:-python3}
CONFIG=${CONFIG:-/etc/kiosk/kiosk.toml}
DB=${DB:-/var/lib/kiosk/ledger.db}
CONSOLE=${CONSOLE:-/dev/ttyAMA0}
RUN=${RUN:-/run/kiosk-powercut}
BROKER_HOST=${BROKER_HOST:-10.0.2.100}  # QEMU's guestfwd to the test's broker on the host
BROKER_PORT=${BROKER_PORT:-1883}
SALES=${SALES:-20000}       # more than any test waits for: it sells until the power goes
WAIT_FOR=${WAIT_FOR-kiosk.service}
AS=${AS-runuser -u kiosk --}  # the app's user: SQLite's -wal and -shm stay the kiosk's
CODE=4006381000017          # the test item's EAN-13

say() { printf '%s\n' "$*" >> "$CONSOLE"; }

wait_for_app() {  # the app first: it must reach its selling screen within its start timeout
    [ -n "$WAIT_FOR" ] || return 0
    i=0
    until systemctl is-active --quiet "$WAIT_FOR"; do
        i=$((i + 1))
        [ "$i" -le 600 ] || { say "POWERCUT: $WAIT_FOR never became active"; exit 1; }
        sleep 1
    done
}

session() {  # session N: N sales, one item each, paid exactly or with change
    n=0
    while [ "$n" -lt "$1" ]; do
        n=$((n + 1))
        echo "{\"scan\": \"$CODE\"}"
        if [ $((n % 3)) = 0 ]; then
            echo '{"qty": "2"}'
            echo '{"pay": {"cash": "5.00"}}'
        else
            echo '{"pay": {"cash": "1.00"}}'
        fi
        echo '{"receipt": "none"}'
    done
}

sync_config() {  # the kiosk's config, its broker replaced by the test's (no login)
    sed '/^\[mqtt\]/,/^\[/{/^\[mqtt\]/d;/^\[/!d}' "$CONFIG"
    printf '\n[mqtt]\nhost = "%s"\nport = %s\n' "$BROKER_HOST" "$BROKER_PORT"
}

paid_lines() {  # replay's step lines -> PAID lines on the console, as each one comes
    while IFS= read -r line; do
        case $line in
            *" pay "*" ok  Paid, thank you!"*) say "PAID ${line##* } #" ;;
            *" ok  "*) ;;
            *) say "POWERCUT: $line" ;;
        esac
    done
}

sell() {
    mkdir -p "$RUN"
    printf 'sku,name,price,tax,unit,barcodes\nPOWERCUT,Power cut test item,1.00,A,each,%s\n' \
        "$CODE" > "$RUN/catalog.csv"
    session "$SALES" > "$RUN/session.jsonl"
    sync_config > "$RUN/sync.toml"
    chmod 0644 "$RUN/catalog.csv" "$RUN/session.jsonl" "$RUN/sync.toml"
    wait_for_app
    # shellcheck disable=SC2086  # AS is a command and its arguments
    $AS "$KIOSK" catalog import --config "$CONFIG" --db "$DB" "$RUN/catalog.csv" | paid_lines
    # shellcheck disable=SC2086
    $AS "$KIOSK" sync --config "$RUN/sync.toml" --db "$DB" > "$RUN/sync.log" 2>&1 &
    echo $! > "$RUN/sync.pid"
    say "POWERCUT selling (publisher on $BROKER_HOST:$BROKER_PORT)"
    # shellcheck disable=SC2086
    $AS "$KIOSK" replay --role self-checkout --config "$CONFIG" --db "$DB" \
        "$RUN/session.jsonl" | paid_lines
    say "POWERCUT sold out"
}

check() {
    wait_for_app
    # shellcheck disable=SC2086
    $AS "$PYTHON" - "$DB" <<'PY' | while IFS= read -r line; do say "$line"; done
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
numbers = [row[0] for row in db.execute("SELECT number FROM txn WHERE kind = 'sale' ORDER BY id")]
for number in numbers:
    print(f"LEDGER {number} #")
print(f"LEDGER-COUNT {len(numbers)}")
PY
    # shellcheck disable=SC2086
    if $AS "$KIOSK" ledger verify --config "$CONFIG" --db "$DB" > "$RUN.verify" 2>&1; then
        verdict=ok
    else
        verdict=failed
    fi
    while IFS= read -r line; do say "VERIFY: $line"; done < "$RUN.verify"
    say "VERIFY $verdict"
}

case $mode in
    sell) sell ;;
    check) check ;;
    *) echo "usage: powercut.sh sell|check" >&2; exit 2 ;;
esac
