"""A loopback HTTP server for the download tests (the ``server`` fixture in conftest.py): no test
reaches beyond 127.0.0.1."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server:
    """Routes: path -> (behaviour, body, n). Behaviours: ok, wrong, truncate (n times, then ok),
    status (answer HTTP n[0] n[1] times, then ok), slow (sleep n seconds, then ok)."""

    def __init__(self):
        self.routes: dict[str, tuple] = {}
        self.hits: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                hit = server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if self.path not in server.routes:
                    self.send_error(404, "Not Found")
                    return
                kind, body, n = server.routes[self.path]
                if kind == "status" and hit <= n[1]:
                    self.send_error(n[0])
                    return
                if kind == "slow":
                    time.sleep(n)
                if kind == "wrong":
                    body = b"X" * len(body)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if kind == "truncate" and hit <= n:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def serve(self, path: str, body: bytes, kind: str = "ok", n=0) -> str:
        self.routes[path] = (kind, body, n)
        return self.url + path
