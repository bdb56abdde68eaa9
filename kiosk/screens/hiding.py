"""Widgets that leave the drawing while hidden, rather than being drawn transparent.

Kivy draws a widget at opacity 0 all the same: every instruction, every label's texture
(a label's texture is drawn at its own size even in a widget of height 0). The kiosk's
alert bars, the demo bar and the staffed till's quantity pad are hidden most of the
day at a self-checkout, and under a software rasteriser (Mesa llvmpipe, no GPU) they
cost ~4 ms of every frame (bench/scan_bench.py). `visible: False` takes such a widget out
of its parent; `visible: True` puts it back in its place.
"""

from __future__ import annotations

from kivy.clock import Clock
from kivy.properties import BooleanProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.label import Label
from kivy.uix.widget import Widget


class Hideable:
    """Mixin for a Widget class: `visible` says whether it is in its parent.

    While hidden, an empty widget of no size holds its place among its siblings (and
    keeps it alive: a kv `id` is only a weak reference); it draws nothing, and a layout
    places the others as it did when the hidden one had no size."""

    visible = BooleanProperty(True)

    def __init__(self, **kwargs):
        self._stand_in: Widget | None = None
        super().__init__(**kwargs)
        self.fbind("parent", self._placed)

    def on_visible(self, _instance, visible: bool) -> None:
        if not visible:
            self._leave()
            return
        stand_in, self._stand_in = self._stand_in, None
        home = stand_in.parent if stand_in is not None else None
        if home is not None:
            index = home.children.index(stand_in)
            home.remove_widget(stand_in)
            home.add_widget(self, index=index)

    def _placed(self, _instance, parent) -> None:
        # Hidden before it had a parent (made with visible=False, then added): it
        # leaves before the next frame, once the parent's add_widget is over.
        if parent is not None and not self.visible:
            Clock.schedule_once(lambda _dt: self._leave(), -1)

    def _leave(self) -> None:
        home = self.parent
        if self.visible or home is None:
            return
        index = home.children.index(self)
        stand_in = Widget(size_hint=(None, None), size=(0, 0))
        stand_in.holds = self
        self._stand_in = stand_in
        home.remove_widget(self)
        home.add_widget(stand_in, index=index)


class HideableLabel(Hideable, Label):
    pass


class HideableButton(Hideable, Button):
    pass


class HideableBox(Hideable, BoxLayout):
    pass
