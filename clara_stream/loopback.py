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


def refusal(who: str, host: str, origin: str | None, *, loopback_only: bool, has_token: bool) -> tuple[int, str] | None:
    """``(HTTP status, message)`` for a request a service must not answer, else None.

    A loopback-only service answers loopback Host headers only (421: DNS rebinding); one without a
    token answers no page of another origin (403: a cross-site form or text/plain POST needs no
    preflight, so a browser would send it)."""
    if loopback_only and not is_loopback(host):
        return 421, f"{who}: expected a loopback Host header on a loopback-only service; got {host!r}"
    if origin is not None and not has_token and not is_loopback(urlsplit(origin).netloc):
        return 403, (f"{who}: expected requests from this machine's own pages while no token is set; "
                     f"got Origin {origin!r}")
    return None
