"""The one loopback rule (``clara_stream.loopback``), against the standard library's own answer."""

from __future__ import annotations

import ipaddress

import pytest

from clara_stream.loopback import host_name, is_loopback


@pytest.mark.parametrize(("host", "name"), [
    ("127.0.0.1", "127.0.0.1"), ("127.0.0.1:8080", "127.0.0.1"), ("[::1]:80", "::1"), ("::1", "::1"),
    ("LocalHost:9", "localhost"), (" 10.0.0.1 ", "10.0.0.1"), ("[::1", ""), ("", ""),
    ("127.0.0.1.rebind.example:80", "127.0.0.1.rebind.example"),
])
def test_the_name_of_a_bind_address_or_host_header(host: str, name: str) -> None:
    assert host_name(host) == name


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.8.9.10:80", "::1", "[::1]:8080", "localhost", "localhost:1", "0.0.0.0", "::", "10.0.0.1",
    "192.168.1.2:80", "127.0.0.1.rebind.example", "127.attacker.example:80", "127.0.0.1.", "localhost.evil",
    "evil.example", "",
])
def test_loopback_is_localhost_or_a_loopback_address_and_nothing_else(host: str) -> None:
    name = host_name(host)
    try:
        expected = ipaddress.ip_address(name).is_loopback  # the stdlib's answer for addresses
    except ValueError:
        expected = name == "localhost"  # and for names: only localhost
    assert is_loopback(host) is expected
    if host.startswith("127.") and not host.replace(".", "").replace(":", "").isdigit():
        assert not is_loopback(host)  # a DNS name that merely starts like 127.x
