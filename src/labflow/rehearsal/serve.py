"""A loopback HTTP server for the rehearsal's fixtures: GET only, 127.0.0.1 only, the files it was given."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FixtureServer:
    """Serves ``routes`` (URL path -> file) at ``url`` until closed (a context manager)."""

    def __init__(self, routes: dict[str, Path]):
        self.routes = dict(routes)
        self.hits: dict[str, int] = {}
        routes_, hits = self.routes, self.hits

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                file = routes_.get(self.path)
                hits[self.path] = hits.get(self.path, 0) + 1
                if file is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(file.stat().st_size))
                self.end_headers()
                with open(file, "rb") as f:
                    while chunk := f.read(1 << 20):
                        self.wfile.write(chunk)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FixtureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
