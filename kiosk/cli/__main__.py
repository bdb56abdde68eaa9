"""`python -m kiosk.cli ...`: the same as the `kiosk` command."""

from kiosk.cli.base import main

if __name__ == "__main__":
    main()
