"""A partner system's callback endpoint on the loopback interface: keeps what the registry API delivers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answer_status: int = 200

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for got, body in self.received if got == path]


@contextmanager
def receiving(port: int) -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            receiver.received.append((self.path, body))
            self.send_response(receiver.answer_status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"message": {"ack_status": "ACK"}}')

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
