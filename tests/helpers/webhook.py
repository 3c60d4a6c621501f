"""A Slack-style webhook receiver on loopback, for the alert automations' notifications."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from helpers.processes import free_port, wait_until


class Receiver:
    """A Slack-style webhook on 127.0.0.1: keeps every POSTed JSON body; stopped by its fixture."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, text: str, timeout: float = 60) -> dict:
        return wait_until(
            lambda: next((body for body in list(self.bodies) if text in body.get("text", "")), None),
            timeout,
            f"a notification containing {text!r}",
            describe=lambda: f"got {self.bodies}",
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
