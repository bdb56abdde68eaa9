"""Live updates: one in-process broadcaster, and the /events stream (server-sent events).

Any thread (the MQTT link's, a page handler's) calls ``Live.publish(kind, data)``;
every open page holds one SSE connection and gets the event within milliseconds.
A page that falls behind (its queue full) loses its oldest events rather than
holding up the others, and is told to reload (event ``resync``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator

QUEUE = 1000  # events held for one slow page
KEEPALIVE_S = 15.0  # a comment line so proxies and browsers keep the stream open


class Live:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()
        self.published = 0

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(QUEUE)
        with self._lock:
            self._subscribers.add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with self._lock:
            self._subscribers = {s for s in self._subscribers if s[1] is not queue}

    @property
    def listeners(self) -> int:
        return len(self._subscribers)

    def publish(self, kind: str, data: dict) -> None:
        """From any thread."""
        message = f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
        self.published += 1
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(_put, queue, message)
            except RuntimeError:  # its loop has closed
                self.unsubscribe(queue)

    def close(self) -> None:
        """End every open stream (the server is stopping): no stream holds it up."""
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            with contextlib.suppress(RuntimeError):  # its loop has closed
                loop.call_soon_threadsafe(_put, queue, None)


def _put(queue: asyncio.Queue, message: str | None) -> None:
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
        if message is not None:
            message = "event: resync\ndata: {}\n\n"
    queue.put_nowait(message)


async def stream(live: Live, stopping: asyncio.Event | None = None) -> AsyncIterator[str]:
    queue = live.subscribe()
    try:
        yield "retry: 2000\n\n"
        while stopping is None or not stopping.is_set():
            try:
                message = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                message = ": keepalive\n\n"
            if message is None:
                return
            yield message
    finally:
        live.unsubscribe(queue)
