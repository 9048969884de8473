"""One rule for "this machine only": a bind address or a Host header that names loopback.

Every service binds 127.0.0.1 unless told otherwise and, while loopback-only, refuses requests whose
Host header names anything else (DNS rebinding). Both checks use this one parser. A name is loopback
only when it is ``localhost`` or an IP address in 127.0.0.0/8 or ::1; a name that merely starts
with ``127.`` (``127.0.0.1.rebind.example``) is a DNS name anyone can point anywhere.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def host_name(host: str) -> str:
    """The name in a bind address or Host header: port and IPv6 brackets removed, lower case."""
    h = host.strip().lower()
    if h.count(":") > 1 and not h.startswith("["):  # a bare IPv6 address
        return h
    try:
        return urlsplit(f"//{h}").hostname or ""
    except ValueError:  # e.g. an unclosed "[" bracket: no name
        return ""


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (a port and brackets allowed); False for 0.0.0.0,
    ::, other addresses and every other name."""
    name = host_name(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
