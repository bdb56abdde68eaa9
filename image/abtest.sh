#!/bin/sh
# The A/B boot test's guest side (build.sh ab-test). It runs on the kiosk, as root, from
# the kernel command line (systemd.run=) off the boot selection partition, every boot:
#   abtest.sh boot     say which slot booted; once the boot check has decided, the
#                      update status and RAUC's; once the app is up, sell two sales, then
#                      sell two more every few seconds while a USB stick's update
#                      installs ("ABTEST installing" ... "ABTEST install finished")
#   abtest.sh final    the same status, whether the kiosk user is kept away from RAUC,
#                      then powercut.sh check: every sale in the ledger ("LEDGER <receipt>
#                      #") and the ledger's own check ("VERIFY ok")
# Sales are made like powercut.sh's (kiosk replay on the kiosk's own ledger, as a
# self-checkout, one test item each) and written to the console as "PAID <receipt> #".
set -u
mode=${1:?usage: abtest.sh boot|final}
HERE=$(dirname "$0")
KIOSK=/opt/kiosk/venv/bin/kiosk
CONFIG=/etc/kiosk/kiosk.toml
DB=/var/lib/kiosk/ledger.db
CONSOLE=/dev/ttyAMA0
RUN=/run/kiosk-abtest
AS="runuser -u kiosk --"
CODE=4006381000017
export KIOSK_CONFIG=$CONFIG

say() { printf '%s\n' "$*" >> "$CONSOLE"; }

active() { [ "$(systemctl show -p ActiveState --value "$1")" = "$2" ]; }

wait_check() {  # kiosk-update-check.service has started and ended (its verdict is in)
    i=0
    until [ "$(systemctl show -p ExecMainExitTimestampMonotonic --value kiosk-update-check.service)" != 0 ] \
          && ! active kiosk-update-check.service active && ! active kiosk-update-check.service activating; do
        i=$((i + 1)); [ "$i" -le 900 ] || { say "ABTEST the boot check never ended"; return 1; }
        sleep 1
    done
}

status() {
    say "ABTEST status $($KIOSK update status --json 2>&1 | tr -d '\n')"
    rauc status 2>&1 | while IFS= read -r line; do say "ABTEST rauc: $line"; done
}

wait_app() {
    i=0
    until active kiosk.service active; do
        i=$((i + 1)); [ "$i" -le 900 ] || { say "ABTEST the app never became active"; return 1; }
        sleep 1
    done
}

paid_lines() {
    while IFS= read -r line; do
        case $line in
            *" pay "*" ok  Paid, thank you!"*) say "PAID ${line##* } #" ;;
            *" ok  "*) ;;
            *) say "ABTEST replay: $line" ;;
        esac
    done
}

sell() {  # sell N: N sales of one test item, cash
    n=0
    : > "$RUN/session.jsonl"
    while [ "$n" -lt "$1" ]; do
        n=$((n + 1))
        printf '%s\n' "{\"scan\": \"$CODE\"}" '{"pay": {"cash": "1.00"}}' '{"receipt": "none"}' \
            >> "$RUN/session.jsonl"
    done
    # shellcheck disable=SC2086  # AS is a command and its arguments
    $AS "$KIOSK" replay --role self-checkout --config "$CONFIG" --db "$DB" \
        "$RUN/session.jsonl" | paid_lines
}

installing() {
    systemctl list-units --no-legend --state=activating 'kiosk-update-usb@*' | grep -q .
}

boot() {
    say "ABTEST boot $(tr ' ' '\n' < /proc/cmdline | grep -E '^(rauc\.slot|kiosk\.tryboot)=' | tr '\n' ' ')"
    wait_check && status
    wait_app || return 1
    mkdir -p "$RUN" && chmod 0755 "$RUN"
    printf 'sku,name,price,tax,unit,barcodes\nABTEST,A/B test item,1.00,A,each,%s\n' "$CODE" \
        > "$RUN/catalog.csv"
    chmod 0644 "$RUN/catalog.csv"
    # shellcheck disable=SC2086
    $AS "$KIOSK" catalog import --config "$CONFIG" --db "$DB" "$RUN/catalog.csv" > /dev/null 2>&1
    sell 2
    say "ABTEST selling ready"
    was=""
    while :; do
        if installing; then
            [ -n "$was" ] || say "ABTEST installing"
            was=1
            sell 2
        elif [ -n "$was" ]; then
            say "ABTEST install finished"
            status
            was=""
        fi
        sleep 3
    done
}

final() {
    wait_check && status
    wait_app || return 1
    if runuser -u kiosk -- rauc status > "$RUN.rauc" 2>&1; then
        say "ABTEST rauc as kiosk: allowed"
    else
        say "ABTEST rauc as kiosk: refused ($(tail -1 "$RUN.rauc"))"
    fi
    WAIT_FOR="" /bin/sh "$HERE/powercut.sh" check
}

mkdir -p "$RUN"
case $mode in
    boot) boot ;;
    final) final ;;
    *) echo "usage: abtest.sh boot|final" >&2; exit 2 ;;
esac
