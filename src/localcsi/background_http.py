"""An HTTP server that serves from a daemon thread: the one shape of the extender's, the webhook's and
the metrics servers."""

from __future__ import annotations

import socket
import socketserver
import threading
from http.server import ThreadingHTTPServer


class BackgroundHTTPServer(ThreadingHTTPServer):
    """``start`` serves from a daemon thread, ``stop`` shuts it down and closes the socket; a host with
    a colon is IPv6. Each connection gets a daemon thread, and closing does not wait for them."""

    daemon_threads = True
    block_on_close = False
    thread_name = "localcsi-http"

    def __init__(self, address: tuple[str, int], handler: type[socketserver.BaseRequestHandler]) -> None:
        self._thread: threading.Thread | None = None
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name=self.thread_name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
