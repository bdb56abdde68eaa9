#!/usr/bin/env bash
# One entry point for a fresh Debian / Raspberry Pi OS machine:
#   ./dev.sh demo    install what is missing, then run the kiosk demo (simulated hardware)
#   ./dev.sh test    install what is missing, then lint and run the whole test suite
#   ./dev.sh mutate  mutation testing of the core with mutmut (tests/mutate.py --list)
# Debian packages are installed with apt-get only when missing; Python packages go
# into .venv, reinstalled only when setup.cfg changes.
set -euo pipefail
cd "$(dirname "$0")"

VENV=${KIOSK_VENV:-.venv}
RUN_PKGS=(python3 python3-venv python3-dev gcc linux-libc-dev libxkbcommon-dev xkb-data fonts-dejavu-core)
TEST_PKGS=(mosquitto postgresql xvfb xdotool systemd mtools dosfstools fdisk e2fsprogs tesseract-ocr chromium rauc squashfs-tools dbus-daemon)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_ensure() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "dev.sh: installing Debian packages: ${missing[*]}" >&2
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

venv_ensure() {
    local extras=$1 stamp
    # evdev and xkbcommon build from source: gcc, headers, libxkbcommon; xkb-data has
    # the keyboard layouts, DejaVu the receipt preview font.
    apt_ensure "${RUN_PKGS[@]}"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    stamp="$VENV/.installed-$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)-$extras"
    if [ ! -e "$stamp" ]; then
        "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        "$VENV/bin/python" -m pip install -q -e ".[$extras]"
        rm -f "$VENV"/.installed-*
        touch "$stamp"
    fi
    # The language catalogs: .po in git, .mo built here (the app also builds a missing
    # or stale one on first use, into its cache: see kiosk/i18n.py).
    "$VENV/bin/pybabel" -q compile -D kiosk -d kiosk/locale
}

case "${1:-}" in
    demo)
        shift
        venv_ensure test,pi
        exec "$VENV/bin/kiosk" run --demo "$@"
        ;;
    test)
        shift
        apt_ensure "${TEST_PKGS[@]}"
        venv_ensure test,pi
        "$VENV/bin/ruff" check kiosk tests bench
        "$VENV/bin/ruff" format --check kiosk tests bench
        set +e
        "$VENV/bin/python" -m pytest "$@"
        rc=$?
        set -e
        [ $rc -eq 5 ] && { echo "dev.sh: pytest collected no tests" >&2; exit 1; }
        exit $rc
        ;;
    mutate)
        # Mutation testing of the core (mutmut), not part of `test`: ./dev.sh mutate --list
        shift
        venv_ensure test,pi
        exec "$VENV/bin/python" tests/mutate.py "$@"
        ;;
    *)
        echo "usage: ./dev.sh demo|test|mutate [args...]" >&2
        exit 2
        ;;
esac
