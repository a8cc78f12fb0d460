"""A local HTTP receiver: the scratch target of destinations that POST records (the http recipe's check config
points at it through env://BIZON_FORGE_RECEIVER_URL). It keeps what it receives per destination_id, honours
`"replace": true`, drops a batch whose Idempotency-Key it already stored, and answers GET with what it holds,
which is what the http recipe's read_back() asks for.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

MAX_BODY = 64 * 1024 * 1024


class Receiver:
    def __init__(self):
        self.stored: dict[str, list] = {}
        self.keys: set[str] = set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # the checks' logs are the destination's, not ours
                pass

            def _answer(self, status: int, body: dict | None = None) -> None:
                data = json.dumps(body or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_HEAD(self):
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                query = parse_qs(urlparse(self.path).query)
                destination_id = (query.get("destination_id") or [""])[0]
                with receiver.lock:
                    records = list(receiver.stored.get(destination_id, []))
                self._answer(200, {"destination_id": destination_id, "records": records})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._answer(413, {"error": "body too large"})
                    return
                try:
                    body = json.loads(self.rfile.read(length))
                    destination_id, records = str(body["destination_id"]), list(body["records"])
                except (ValueError, KeyError, TypeError) as error:
                    self._answer(400, {"error": f"expected {{destination_id, records, replace}}: {error}"})
                    return
                key = self.headers.get("Idempotency-Key")
                with receiver.lock:
                    if key and key in receiver.keys:
                        self._answer(200, {"duplicate": True})
                        return
                    if body.get("replace"):
                        receiver.stored[destination_id] = []
                    receiver.stored.setdefault(destination_id, []).extend(records)
                    if key:
                        receiver.keys.add(key)
                self._answer(200, {"stored": len(records)})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="bizon-forge-receiver")
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/records"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
