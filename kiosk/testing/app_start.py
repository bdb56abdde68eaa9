"""The app's start up to Kivy's main loop, in a child interpreter: `kiosk run --demo
--offline` with App.run replaced by a line "LOADED <json list of sys.modules>". Shared
by tests/test_app_start.py (what must not be imported at start) and bench/app_bench.py."""

STARTED = """
import json, sys
sys.argv = ["kiosk", "run", "--demo", "--offline"]
import kiosk.app
kivy_environment = kiosk.app._kivy_environment
def stop_before_kivy_runs(*args):
    kivy_environment(*args)
    from kivy.app import App
    App.run = lambda self: print("LOADED", json.dumps(sorted(sys.modules)), flush=True)
kiosk.app._kivy_environment = stop_before_kivy_runs
from kiosk.cli import main
main()
"""
