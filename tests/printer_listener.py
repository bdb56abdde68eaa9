"""A network receipt printer stand-in on 127.0.0.1: keeps every byte python-escpos
sends over its real Network transport and answers the two real-time status queries
(DLE EOT 1: online, DLE EOT 4: paper) the way an Epson-compatible printer does."""

from __future__ import annotations

import socket
import threading

ONLINE, PAPER_OK, PAPER_LOW, PAPER_OUT = 0x12, 0x12, 0x1E, 0x72


class PrinterListener:
    def __init__(self):
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.received = bytearray()
        self.paper = PAPER_OK
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            conn.settimeout(0.2)
            with conn:
                while not self._stop.is_set():
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    self.received += data
                    if data.endswith(b"\x10\x04\x01"):
                        conn.sendall(bytes([ONLINE]))
                    elif data.endswith(b"\x10\x04\x04"):
                        conn.sendall(bytes([self.paper]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.server.close()
