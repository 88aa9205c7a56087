"""A tiny stand-in for the Hugging Face Hub HTTP API, serving one model folder.

It answers the calls `huggingface_hub.snapshot_download` makes (repo info, file tree,
HEAD/GET of /resolve/), so tests exercise the real client and its HF_ENDPOINT handling
on loopback, with no network.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

SHA = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repo_id: str, folder: Path) -> None:
        self.repo_id = repo_id
        self.folder = folder
        self.requests: list[str] = []
        self.files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes, headers: dict[str, str], head_only: bool = False) -> None:
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head_only:
                    self.wfile.write(body)

            def _route(self, head_only: bool) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append(f"{self.command} {path}")
                prefix = f"/api/models/{hub.repo_id}"
                if path.startswith(f"{prefix}/revision/"):
                    body = {"id": hub.repo_id, "sha": SHA, "siblings": [{"rfilename": f} for f in hub.files]}
                    return self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head_only)
                if path.startswith(f"{prefix}/tree/"):
                    body = [
                        {
                            "type": "file",
                            "path": f,
                            "size": p.stat().st_size,
                            "oid": hashlib.sha1(p.read_bytes()).hexdigest(),
                        }
                        for f, p in hub.files.items()
                    ]
                    return self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head_only)
                resolve = f"/{hub.repo_id}/resolve/"
                if path.startswith(resolve):
                    name = path[len(resolve) :].split("/", 1)[1]
                    if name in hub.files:
                        data = hub.files[name].read_bytes()
                        etag = '"' + hashlib.sha1(data).hexdigest() + '"'
                        headers = {"X-Repo-Commit": SHA, "ETag": etag, "Content-Type": "application/octet-stream"}
                        return self._send(200, data, headers, head_only)
                body = json.dumps({"error": "Repository not found"}).encode()
                return self._send(
                    404, body, {"X-Error-Code": "RepoNotFound", "Content-Type": "application/json"}, head_only
                )

            def do_GET(self) -> None:
                self._route(False)

            def do_HEAD(self) -> None:
                self._route(True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
