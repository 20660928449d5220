"""uvicorn in a thread, as a Part: `run()` serves until `stop()`, which stops accepting
connections and lets in-flight requests finish (within the graceful timeout).

Also usable on its own (tests, the demo, the benchmark): `start()` returns once the socket
listens (port 0 picks a free one: see `port`), `stop()` waits for the thread.
"""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI


class HttpServer:
    name = "api"

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: int = 8080,
        graceful_timeout_s: float = 20.0,
    ) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            log_level="warning",
            access_log=False,  # HttpMetricsMiddleware logs one line per request
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=max(1, int(graceful_timeout_s)),
            timeout_keep_alive=30,
        )
        self.server = uvicorn.Server(self.config)
        self._thread: threading.Thread | None = None

    # -- Part -------------------------------------------------------------------------------

    def run(self) -> None:
        where = f"{self.host}:{self.requested_port}"
        try:
            self.server.run()
        except SystemExit:  # uvicorn's answer to a failed bind
            raise RuntimeError(f"HTTP server did not start on {where}") from None
        if not self.server.started:
            raise RuntimeError(f"HTTP server did not start on {where}")

    def stop(self) -> None:
        self.server.should_exit = True

    def healthy(self) -> bool:
        return bool(self.server.started) and not self.server.should_exit

    # -- standalone -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        servers = getattr(self.server, "servers", [])
        for server in servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.requested_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> HttpServer:
        self._thread = threading.Thread(target=self._serve, name="http-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"HTTP server did not start on {self.host}:{self.requested_port}"
                )
            time.sleep(0.01)
        return self

    def _serve(self) -> None:
        try:
            self.run()
        except RuntimeError:
            return  # start() tells the caller

    def join(self, timeout_s: float = 30.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.join()
