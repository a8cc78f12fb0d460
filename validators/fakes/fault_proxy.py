"""A TCP proxy in front of a PostgreSQL or MySQL/MariaDB server that drops connections on cue: the data suite's
`data.unreliable_target` puts it between a destination and the check config's server (suite_probe.py).

It reads the client's side of the wire protocol just enough to see each statement's first word (PostgreSQL's
simple and extended query messages, MySQL's COM_QUERY and COM_STMT_PREPARE, all plaintext on a connection
without TLS) and, once armed, drops the connection at the n-th statement that changes something: before the
server sees it ("before"), or after the server answered it, the answer never reaching the client ("after": a
COMMIT that landed, whose client cannot know it). The server's answers pass through untouched. Nothing is
sent to the server that the client did not send: its settings and other sessions are never touched.

Runs in the workspace's Python (maybe 3.9); imports nothing but the standard library.
"""

from __future__ import annotations

import socket
import struct
import threading

# The first words of statements that change something; COMMIT too (a transaction's writes land with it).
WRITES = frozenset(
    "INSERT UPDATE DELETE MERGE UPSERT REPLACE COPY CREATE DROP ALTER RENAME TRUNCATE COMMIT END".split()
)
PG_SSL, PG_GSS, PG_CANCEL = 80877103, 80877104, 80877102
MYSQL_QUERY, MYSQL_PREPARE = 0x03, 0x16


def first_word(sql: bytes) -> str:
    """The statement's first keyword, past whitespace, comments and an opening parenthesis."""
    text = sql.lstrip()
    while True:
        if text.startswith(b"--"):
            text = text.split(b"\n", 1)[1].lstrip() if b"\n" in text else b""
        elif text.startswith(b"/*"):
            text = text.split(b"*/", 1)[1].lstrip() if b"*/" in text else b""
        elif text.startswith(b"("):
            text = text[1:].lstrip()
        else:
            break
    word = bytearray()
    for byte in text[:16]:
        if not (65 <= byte <= 90 or 97 <= byte <= 122 or byte == 95):
            break
        word.append(byte)
    return word.decode().upper()


def _read(sock: socket.socket, count: int) -> bytes | None:
    chunks, left = [], count
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class FaultProxy:
    """127.0.0.1:<port> forwards to (host, port); `arm()` drops a connection at a later write statement."""

    def __init__(self, host: str, port: int, protocol: str):
        assert protocol in ("postgresql", "mysql")
        self.upstream, self.protocol = (host, port), protocol
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self._armed: tuple | None = None  # (when, nth, words)
        self.seen: list[str] = []  # write statements since arm()
        self.fired: str | None = None  # the statement the armed fault dropped, once it did
        self.encrypted = False  # a connection went TLS: its statements cannot be seen
        self.connections = 0
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="fault-proxy").start()

    # -- control ---------------------------------------------------------------------------------

    def arm(self, when: str, nth: int = 1, words: frozenset = WRITES) -> None:
        """Drop the connection at the nth write statement (of `words`) from now: `when` is before or after."""
        assert when in ("before", "after") and nth >= 1
        with self.lock:
            self._armed, self.seen, self.fired = (when, nth, words), [], None

    def disarm(self) -> None:
        with self.lock:
            self._armed = None

    def close(self) -> None:
        self.disarm()
        self.listener.close()
        with self.lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            _close(sock)

    # -- the connections -------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True, name="fault-proxy-conn").start()

    def _serve(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=30)
            server.settimeout(None)
        except OSError:
            _close(client)
            return
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self.connections += 1
            self._socks += [client, server]
        lost = _Lost()
        try:
            if self.protocol == "postgresql" and not self._pg_startup(client, server):
                return
            threading.Thread(target=_pump, args=(server, client, lost), daemon=True).start()
            self._client_to_server(client, server, lost)
        except OSError:
            pass
        finally:
            _close(client)
            _close(server)

    def _pg_startup(self, client: socket.socket, server: socket.socket) -> bool:
        """Forward PostgreSQL's untyped start-up messages; False once the connection went TLS or GSS (piped raw)."""
        while True:
            head = _read(client, 8)
            if head is None:
                return False
            length, code = struct.unpack("!II", head)
            rest = _read(client, length - 8) if length > 8 else b""
            if rest is None:
                return False
            server.sendall(head + rest)
            if code not in (PG_SSL, PG_GSS):
                return code != PG_CANCEL
            answer = _read(server, 1)
            if answer is None:
                return False
            client.sendall(answer)
            if answer in (b"S", b"G"):
                self.encrypted = True
                threading.Thread(target=_pump, args=(server, client, _Lost()), daemon=True).start()
                _pump(client, server, _Lost())
                return False

    def _client_to_server(self, client: socket.socket, server: socket.socket, lost: _Lost) -> None:
        while True:
            packet, sql = self._next_packet(client)
            if packet is None:
                return
            when = self._decide(first_word(sql)) if sql is not None else None
            if when == "before":
                return  # the finally of _serve closes both sides: the server never saw it
            if when == "after":
                lost.swallow.set()
            server.sendall(packet)
            if when == "after":
                lost.answered.wait(30)  # the server answered (so it did the work); the client never hears it
                return

    def _next_packet(self, client: socket.socket) -> tuple:
        """(the packet's bytes, its SQL text or None), or (None, None) at the end of the connection."""
        if self.protocol == "postgresql":
            head = _read(client, 5)
            if head is None:
                return None, None
            body = _read(client, struct.unpack("!I", head[1:])[0] - 4)
            if body is None:
                return None, None
            if head[:1] == b"Q":
                return head + body, body
            if head[:1] == b"P":  # Parse: a statement name, NUL, then the query text
                return head + body, body.split(b"\x00", 1)[1] if b"\x00" in body else None
            return head + body, None
        head = _read(client, 4)
        if head is None:
            return None, None
        length = int.from_bytes(head[:3], "little")
        body = _read(client, length)
        if body is None:
            return None, None
        # A command starts at sequence 0; the handshake's packets (sequence 1 and on) are no statements.
        if head[3] == 0 and body[:1] in (bytes([MYSQL_QUERY]), bytes([MYSQL_PREPARE])) and length < 0xFFFFFF:
            return head + body, body[1:]
        return head + body, None

    def _decide(self, word: str) -> str | None:
        with self.lock:
            if self._armed is None:
                return None
            when, nth, words = self._armed
            if word not in words:
                return None
            self.seen.append(word)
            if len(self.seen) < nth:
                return None
            self._armed = None
            self.fired = f"{word} (before the server saw it)" if when == "before" else f"{word} (answered, answer lost)"
            return when


class _Lost:
    """An answer to lose: once `swallow` is set, what the server sends is dropped and `answered` set."""

    def __init__(self) -> None:
        self.swallow, self.answered = threading.Event(), threading.Event()


def _pump(source: socket.socket, sink: socket.socket, lost: _Lost) -> None:
    try:
        while True:
            chunk = source.recv(1 << 16)
            if not chunk:
                break
            if lost.swallow.is_set():
                lost.answered.set()
                continue
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
