"""WebService: the web view's MQTT link and its HTTP(S) server, beside the controller.

uvicorn serves the Starlette app from a thread of the controller's process (one
event loop; page handlers that query the store run in its small thread pool), so
the shop's one database connection setup, config and logging are shared. A port
that cannot be opened is logged and the controller runs on without its web view:
the shop's stock never waits for a web page.
"""

from __future__ import annotations

import logging
import threading
import time

from kiosk.config import Config
from kiosk.mqtt.web.live import Live

log = logging.getLogger(__name__)


class WebService:
    def __init__(self, config: Config, port: int | None = None, host: str | None = None):
        self.config = config
        cfg = config.controller
        self.port = port if port is not None else cfg.web_port
        self.host = host or cfg.web_host
        self.https = cfg.web_certfile is not None
        self.live = Live()
        self.relay = None
        self.server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.https else "http"
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"{scheme}://{host}:{self.port}"

    def start(self, timeout: float = 15.0) -> WebService:
        import uvicorn  # noqa: PLC0415 - only a controller with a web view needs it

        from kiosk.mqtt.web.app import build_app  # noqa: PLC0415
        from kiosk.mqtt.web.relay import Relay  # noqa: PLC0415

        self.relay = Relay(self.config, self.live).start()
        app = build_app(self.config, relay=self.relay, live_hub=self.live, https=self.https)
        cfg = self.config.controller
        server_config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=2,
            ssl_certfile=str(cfg.web_certfile) if cfg.web_certfile else None,
            ssl_keyfile=str(cfg.web_keyfile) if cfg.web_keyfile else None,
        )
        self.server = uvicorn.Server(server_config)
        self._thread = threading.Thread(target=self._serve, name="web-view", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if self.server.started:
            log.info("web view on %s", self.url)
        else:
            log.error("web view could not start on %s:%s (see above)", self.host, self.port)
        return self

    def _serve(self) -> None:
        try:
            self.server.run()
        except SystemExit:  # uvicorn exits when it cannot bind
            log.error("web view stopped: port %s unavailable", self.port)
        except Exception:  # noqa: BLE001
            log.exception("web view stopped")

    @property
    def running(self) -> bool:
        return bool(self.server and self.server.started and self._thread.is_alive())

    def stop(self) -> None:
        self.live.close()
        if self.server is not None:
            self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)
        if self.relay is not None:
            self.relay.stop()
