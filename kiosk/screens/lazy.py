"""A screen manager that builds each screen the first time it is shown or asked for.

A kiosk at a self-checkout shows five of its sixteen screens all day (attract, cart,
pay, receipt, thanks); building the staff flows, the diagnostics and the overlays at
start cost start time and ~30 MiB of widgets and label textures (bench/app_bench.py).
Code that only updates what a screen shows asks `built(name)` and skips a screen not
built yet: `on_built` fills a screen when it comes, from the state of that moment.
"""

from __future__ import annotations

from collections.abc import Callable

from kivy.uix.screenmanager import Screen, ScreenManager


class LazyScreens(ScreenManager):
    def __init__(self, **kwargs):
        self._makers: dict[str, Callable[[], Screen]] = {}
        self.on_built: Callable[[Screen], None] | None = None
        super().__init__(**kwargs)

    def register(self, name: str, make: Callable[[], Screen]) -> None:
        """`make()` builds the screen called `name` when it is first needed."""
        self._makers[name] = make

    def built(self, name: str) -> Screen | None:
        """The screen if it has been built, without building it."""
        for screen in self.screens:
            if screen.name == name:
                return screen
        return None

    def get_screen(self, name: str) -> Screen:
        """The screen, built now if it was not (Kivy's `current` goes through here)."""
        screen = self.built(name)
        if screen is None and name in self._makers:
            screen = self._makers.pop(name)()
            screen.name = name
            self.add_widget(screen)
            if self.on_built is not None:
                self.on_built(screen)
        return super().get_screen(name)

    def has_screen(self, name: str) -> bool:
        return name in self._makers or super().has_screen(name)
