"""How APDUs reach a ZVT terminal: TCP (port 20007, bare APDUs) or a serial line
(DLE STX framing, CRC, ACK/NAK per message, pyserial)."""

from __future__ import annotations

import socket
import time

from kiosk.drivers.zvt.codec import SACK, SNAK, Apdu, ZvtError, decode_apdu, frame, unframe


class LinkError(Exception):
    """The link to the terminal failed: not reachable, or it went away."""


class LinkTimeout(LinkError):
    """Nothing arrived in time (the link itself may still be up)."""


class TcpLink:
    def __init__(self, host: str, port: int, connect_timeout: float = 5.0):
        self.host, self.port, self.connect_timeout = host, port, connect_timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def open(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        if self._sock is not None:
            return
        try:
            sock = socket.create_connection((self.host, self.port), self.connect_timeout)
        except OSError as exc:
            raise LinkError(f"terminal {self.where} not reachable: {exc.strerror or exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._sock, self._buffer = sock, b""

    def alive(self) -> bool:
        """False when the terminal closed an idle connection (it may, between commands)."""
        if self._sock is None:
            return False
        self._sock.setblocking(False)
        try:
            return bool(self._sock.recv(1, socket.MSG_PEEK))
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            self._sock.setblocking(True)

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock, self._buffer = None, b""

    def send(self, apdu: Apdu) -> None:
        if self._sock is None:
            raise LinkError(f"terminal {self.where}: not connected")
        try:
            self._sock.sendall(apdu.encode())
        except OSError as exc:
            self.close()
            raise LinkError(f"terminal {self.where}: connection lost ({exc})") from None

    def receive(self, timeout: float) -> Apdu:
        """The next APDU; LinkTimeout after `timeout` seconds with nothing complete."""
        deadline = time.monotonic() + timeout
        while True:
            decoded = decode_apdu(self._buffer)
            if decoded is not None:
                apdu, used = decoded
                self._buffer = self._buffer[used:]
                return apdu
            if self._sock is None:
                raise LinkError(f"terminal {self.where}: not connected")
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkTimeout(f"terminal {self.where}: no answer in {timeout:.0f} s")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError as exc:
                self.close()
                raise LinkError(f"terminal {self.where}: connection lost ({exc})") from None
            if not chunk:
                self.close()
                raise LinkError(f"terminal {self.where}: connection closed by the terminal")
            self._buffer += chunk


class SerialLink:
    """ZVT over RS-232/USB serial: each APDU framed, acknowledged with ACK (06) or
    refused with NAK (15, sent again up to 3 times)."""

    def __init__(self, device: str, baudrate: int = 9600, connect_timeout: float = 5.0):
        self.device, self.baudrate, self.connect_timeout = device, baudrate, connect_timeout
        self._port = None
        self._buffer = b""

    @property
    def where(self) -> str:
        return self.device

    @property
    def open(self) -> bool:
        return self._port is not None

    def connect(self) -> None:
        if self._port is not None:
            return
        import serial  # noqa: PLC0415 - pyserial only where a serial terminal is configured

        try:
            self._port = serial.serial_for_url(
                self.device, baudrate=self.baudrate, timeout=0.1, stopbits=serial.STOPBITS_TWO
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"terminal {self.device} not reachable: {exc}") from None
        self._buffer = b""

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            finally:
                self._port, self._buffer = None, b""

    def _read(self, deadline: float) -> bytes:
        import serial  # noqa: PLC0415

        if self._port is None:
            raise LinkError(f"terminal {self.device}: not open")
        if time.monotonic() > deadline:
            raise LinkTimeout(f"terminal {self.device}: no answer")
        try:
            return self._port.read(256)
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise LinkError(f"terminal {self.device}: {exc}") from None

    def send(self, apdu: Apdu) -> None:
        import serial  # noqa: PLC0415

        framed = frame(apdu.encode())
        for _ in range(3):
            try:
                self._port.write(framed)
            except (serial.SerialException, OSError, AttributeError) as exc:
                self.close()
                raise LinkError(f"terminal {self.device}: {exc}") from None
            deadline = time.monotonic() + 2.0
            while True:
                if self._buffer:
                    byte, self._buffer = self._buffer[0], self._buffer[1:]
                    if byte == SACK:
                        return
                    if byte == SNAK:
                        break
                    continue
                self._buffer += self._read(deadline)
        raise LinkError(f"terminal {self.device}: message refused three times (NAK)")

    def receive(self, timeout: float) -> Apdu:
        deadline = time.monotonic() + timeout
        while True:
            start = self._buffer.find(b"\x10\x02")
            if start > 0:
                self._buffer = self._buffer[start:]
            if start >= 0:
                try:
                    found = unframe(self._buffer)
                except ZvtError:
                    self._buffer = self._buffer[2:]
                    self._port.write(bytes((SNAK,)))
                    continue
                if found is not None:
                    raw, used = found
                    self._buffer = self._buffer[used:]
                    self._port.write(bytes((SACK,)))
                    decoded = decode_apdu(raw)
                    if decoded is None:
                        raise LinkError(f"terminal {self.device}: a message cut short")
                    return decoded[0]
            try:
                self._buffer += self._read(deadline)
            except LinkTimeout:
                raise LinkTimeout(f"terminal {self.device}: no answer in {timeout:.0f} s") from None
