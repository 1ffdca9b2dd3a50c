"""A local HTTP server for the zoo tests: 127.0.0.1 only, honours ``Range: bytes=N-`` (the
standard library's handler does not), and can drop a file's connection after N bytes.

Every request is logged as ``(path, range start or None, status)`` so a test can see where a
resumed download started.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Served:
    """Files served from ``folder`` at ``http://127.0.0.1:<port>/<name>``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log: list[tuple[str, int | None, int]] = []
        self.drop_after: dict[str, int] = {}  # name -> bytes sent before the connection is cut
        self.honour_range = True  # False: answer a range request with the whole file (200)
        served = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                path = served.folder / name
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                start = int(match.group(1)) if match and served.honour_range else None
                if "/" in name or not path.is_file():
                    served.log.append((name, start, 404))
                    self.send_error(404)
                    return
                data = path.read_bytes()
                status = 206 if start is not None else 200
                served.log.append((name, start, status))
                body = data[start or 0:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if start is not None:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                cut = served.drop_after.pop(name, None)
                self.wfile.write(body if cut is None else body[:cut])
                if cut is not None:
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
