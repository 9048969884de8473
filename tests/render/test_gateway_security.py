"""The web gateway over real loopback sockets (``render serve`` in a subprocess): token out of URLs,
cookie after the first load, CSP, WebSocket origin and token, DNS-rebinding Host check, the
beyond-loopback token rule, and bad numbers answered 400 / INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import grpc
import httpx
import pytest
from clara_stream.render.client import RenderClient
from clara_stream.render.gateway import COOKIE, CSP, create_app
from websockets.sync.client import connect

TOKEN = "t0k"  # the render_stack fixture's token (checked below)


@pytest.fixture(scope="module")
def http(render_stack):
    assert render_stack["token"] == TOKEN
    return render_stack["http"]


def _ws_url(http: str) -> str:
    return http.replace("http://", "ws://") + "ws"


def test_first_load_trades_the_url_token_for_an_httponly_cookie(http):
    r = httpx.get(http + f"?token={TOKEN}")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN}") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert httpx.get(http + "?token=wrong").status_code == 401
    r = httpx.get(http + "api/datasets", cookies={COOKIE: TOKEN})
    assert r.status_code == 200 and "xss" in {d["name"] for d in r.json()}
    r = httpx.get(http + f"api/datasets?token={TOKEN}")  # a token in any other URL is refused
    assert r.status_code == 401 and "not the URL" in r.text
    assert httpx.get(http + "api/datasets", cookies={COOKIE: "wrong"}).status_code == 401


def test_every_response_carries_the_csp_and_the_page_has_no_inline_script(http):
    for path in ("", "static/viewer.js", "static/viewer.css", "api/datasets"):
        assert httpx.get(http + path).headers["content-security-policy"] == CSP, path
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    page = httpx.get(http).text
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []  # every script is a file
    assert re.findall(r"\son[a-z]+\s*=|\sstyle\s*=", page) == []  # no inline handlers or styles
    js = httpx.get(http + "static/viewer.js").text
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "token" not in js.split("\n", 8)[-1]


def test_websocket_needs_its_own_origin_and_the_token_without_the_url(http):
    ok = {"Cookie": f"{COOKIE}={TOKEN}", "Origin": http.rstrip("/")}
    with connect(_ws_url(http), additional_headers=ok) as ws:
        ws.send(json.dumps({"type": "pan", "dx": 1, "dy": 1}))
        assert "expected an 'open' message first" in json.loads(ws.recv(timeout=20))["message"]
    for headers, url_suffix, code in [
        ({**ok, "Origin": "http://evil.example"}, "", "4403"),  # cross-site page: refused before the token
        ({"Origin": http.rstrip("/")}, "", "4401"),  # no token
        ({"Origin": http.rstrip("/")}, f"?token={TOKEN}", "4401"),  # token in the URL: refused
    ]:
        with pytest.raises(Exception, match=code):
            with connect(_ws_url(http) + url_suffix, additional_headers=headers) as ws:
                ws.recv(timeout=10)


def test_dns_rebinding_host_is_refused_on_loopback(http):
    """Also a name that only starts like a loopback address: 127.0.0.1.rebind.example is a DNS name
    anyone can point at this machine (the check once accepted any name starting with "127.")."""
    for host in ("evil.example:80", "127.0.0.1.rebind.evil.example:8080", "127.attacker.example"):
        r = httpx.get(http + "api/datasets", headers={"Host": host}, cookies={COOKIE: TOKEN})
        assert r.status_code == 421 and "expected a loopback Host header" in r.text, host
    port = http.rstrip("/").rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"127.1.2.3:{port}"):
        assert httpx.get(http + "api/datasets", headers={"Host": host}, cookies={COOKIE: TOKEN}).status_code == 200


def test_huge_tile_coordinates_are_400_not_500(http):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.get(http + f"api/tiles/slide-x/0/{2**40}/0.jpg", headers=auth)
    assert r.status_code == 400 and "x and y 0..2^31-1" in r.text
    ids = {d["name"]: d["id"] for d in httpx.get(http + "api/datasets", headers=auth).json()}
    r = httpx.get(http + f"api/tiles/{ids['slide']}/0/{2**31 - 1}/0.jpg", headers=auth)
    assert r.status_code == 400 and "expected tile x in 0..11" in r.text


def test_beyond_loopback_requires_a_token(tmp_path, render_root):
    with pytest.raises(ValueError, match="expected a token when listening beyond loopback"):
        create_app("127.0.0.1:1", bind_host="0.0.0.0")
    from clara_stream.render.datasets import DatasetRegistry
    from clara_stream.render.server import serve

    with pytest.raises(ValueError, match="expected a token when listening beyond loopback"):
        serve(DatasetRegistry([render_root], tmp_path / "s"), host="0.0.0.0")
    cmd = [sys.executable, "-m", "clara_stream.render.serve", "--root", str(render_root), "--host", "0.0.0.0",
           "--state-dir", str(tmp_path / "st")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "expected --token when listening beyond loopback" in proc.stderr


@pytest.mark.parametrize(
    "field, set_bad",
    [
        ("azimuth_deg", lambda v: setattr(v.camera, "azimuth_deg", float("nan"))),
        ("elevation_deg", lambda v: setattr(v.camera, "elevation_deg", float("inf"))),
        ("window_center", lambda v: setattr(v.window, "center", float("nan"))),
        ("window_width", lambda v: setattr(v.window, "width", float("-inf"))),
        ("transfer[0].opacity", lambda v: (v.ClearField("transfer"), v.transfer.add(value=1.0, opacity=float("nan")))),
        ("transfer[0].value", lambda v: (v.ClearField("transfer"), v.transfer.add(value=float("inf"), opacity=0.5))),
    ],
)
def test_non_finite_view_numbers_are_invalid_argument_naming_the_field(render_stack, field, set_bad):
    """Fails if NaN reaches the renderer (a black frame) or escapes as INTERNAL."""
    with RenderClient(render_stack["grpc"], token=TOKEN) as c:
        sid = c.open(next(d.id for d in c.list() if d.name == "phantom")).session_id
        view = c.state(sid).view
        set_bad(view)
        with pytest.raises(grpc.RpcError) as err:
            c.set_view(sid, view)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"expected {field} finite" in err.value.details()
