"""Run an ASGI app with uvicorn: in the foreground for the commands, on a thread for tests.

``zhiwen serve`` (chat window and API on one port), ``zhiwen api`` and ``zhiwen mcp --http`` all serve
through ``serve``; one process, so one model and one open index serve every request.
"""

from __future__ import annotations

import sys
import threading
import time
import webbrowser

import uvicorn
from starlette.types import ASGIApp


class Served:
    """A uvicorn server for ``app`` on ``host:port``; ``close`` stops it."""

    def __init__(self, app: ASGIApp, host: str, port: int):
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> Served:
        """Serve on a background thread; returns once the port accepts connections."""
        self.thread = threading.Thread(target=self.server.run, name="zhiwen-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on {self.url} (is the port in use?)")
            time.sleep(0.02)
        return self

    def wait(self) -> None:
        """Block until the server stops; Ctrl-C stops it."""
        try:
            while self.thread is not None and self.thread.is_alive():
                self.thread.join(0.5)
        except KeyboardInterrupt:
            self.close()

    def close(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)


def serve(
    app: ASGIApp,
    host: str,
    port: int,
    what: str,
    block: bool = True,
    open_browser: bool = False,
    started: float | None = None,
) -> Served:
    """Serve ``app`` and say where on stderr (stdout may carry a protocol); ``block=False`` returns once
    it accepts connections. ``started`` (a ``time.perf_counter()``) is when start-up began, for the
    ready-in time."""
    started = time.perf_counter() if started is None else started
    served = Served(app, host, port).start()
    ready = f"zhiwen: {what} on {served.url} (ready in {time.perf_counter() - started:.1f} s)"
    if host not in ("127.0.0.1", "localhost", "::1"):
        ready += "; reachable from other machines: create API keys with `zhiwen apikey create`"
    print(ready, file=sys.stderr)
    if open_browser:
        webbrowser.open(served.url)
    if block:
        served.wait()
    return served
