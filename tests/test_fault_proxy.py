"""The fault proxy of data.unreliable_target, against a stand-in server speaking MySQL's packet framing: it drops a
connection before the server sees the armed statement, or after the server answered it (the answer lost)."""

import socket
import threading

import pytest

from bizon_forge.validators.fakes.fault_proxy import FaultProxy, first_word


def packet(sql: str) -> bytes:
    body = b"\x03" + sql.encode()  # COM_QUERY, sequence 0
    return len(body).to_bytes(3, "little") + b"\x00" + body


@pytest.fixture
def server():
    """Records each statement it receives and answers each with a one-byte OK packet."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve(conn: socket.socket) -> None:
        with conn:
            while True:
                head = conn.recv(4, socket.MSG_WAITALL)
                if len(head) < 4:
                    return
                body = conn.recv(int.from_bytes(head[:3], "little"), socket.MSG_WAITALL)
                seen.append(body[1:].decode())
                conn.sendall(b"\x01\x00\x00\x01\x00")

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1], seen
    listener.close()


def closed(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(16) == b""
    except ConnectionResetError:
        return True


def test_first_word_skips_comments_and_parentheses():
    assert first_word(b"  /* hint */ -- note\n (insert into t values (1))") == "INSERT"
    assert first_word(b"commit") == "COMMIT"
    assert first_word(b"SELECT 1") == "SELECT"


def test_drops_before_the_server_sees_it_and_after_it_answered(server):
    port, seen = server
    proxy = FaultProxy("127.0.0.1", port, "mysql")
    try:
        first = socket.create_connection(("127.0.0.1", proxy.port))
        first.sendall(packet("SELECT 1"))
        assert first.recv(16) == b"\x01\x00\x00\x01\x00"
        proxy.arm("before", 1)
        first.sendall(packet("INSERT INTO t VALUES (1)"))
        assert closed(first)
        assert seen == ["SELECT 1"] and proxy.fired == "INSERT (before the server saw it)"

        second = socket.create_connection(("127.0.0.1", proxy.port))
        proxy.arm("after", 1, frozenset({"COMMIT"}))
        second.sendall(packet("INSERT INTO t VALUES (2)"))
        assert second.recv(16) == b"\x01\x00\x00\x01\x00"  # not armed for an INSERT
        second.sendall(packet("COMMIT"))
        assert closed(second)  # the server's answer never came through
        assert seen[-2:] == ["INSERT INTO t VALUES (2)", "COMMIT"]
        assert proxy.fired == "COMMIT (answered, answer lost)" and proxy.connections == 2
    finally:
        proxy.close()
