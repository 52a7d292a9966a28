"""A real HTTP server on 127.0.0.1 for the tests of code that downloads: `serving(handler)`
runs it on a free port in a thread and yields its base URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from typing import Any


@contextmanager
def serving(handler: Any) -> Iterator[str]:
    """`handler`: a BaseHTTPRequestHandler class (or a partial making one)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
