"""Small questions about this machine's network, asked before an engine starts."""

from __future__ import annotations

import socket


def port_free(host: str, port: int) -> bool:
    """Can a server bind `host`:`port` now? (IPv4 or IPv6 by the address's form; `localhost` is 127.0.0.1.)"""
    host = "127.0.0.1" if host == "localhost" else host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
