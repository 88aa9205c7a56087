"""Small questions about this machine's network, asked before a server starts."""

from __future__ import annotations

import ipaddress
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


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free on `host` now (for a server lf-wrap starts itself)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def is_public(host: str) -> bool:
    """Would a server bound to `host` be reachable from other machines (anything but a loopback address)?"""
    if host in ("localhost", ""):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True
