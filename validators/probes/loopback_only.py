"""Refuse every network connection that is not to this machine: a check of a source reaches only the local mock API.

Imported by source_probe.py, and copied as `sitecustomize.py` into the scratch folder of a real `bizon run` (put
first on PYTHONPATH), so neither can reach the real API whatever a config says. Imports only the standard library.
"""

import ipaddress
import socket

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _local(address) -> bool:
    if not isinstance(address, tuple):
        return True  # a Unix socket
    host = str(address[0]).split("%")[0]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _guarded(self, address):
    if not _local(address):
        raise ConnectionRefusedError(f"bizon-forge: a check reaches only the local mock API, not {address[0]}")
    return _connect(self, address)


def _guarded_ex(self, address):
    if not _local(address):
        return 111  # ECONNREFUSED
    return _connect_ex(self, address)


socket.socket.connect = _guarded  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_ex  # type: ignore[method-assign]
