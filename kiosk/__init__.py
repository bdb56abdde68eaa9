"""Open-source firmware for Raspberry Pi retail kiosks."""

__version__ = "0.1.0"
