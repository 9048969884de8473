"""Every container the charts render runs a real `clara-stream` command line.

The rendered command + args (with Kubernetes' `$(VAR)` expansion from the container env) go through the
real CLI with `--help` appended: an option the CLI does not have fails the parse before help prints.
"""

from __future__ import annotations

import re

import pytest

from clara_stream.runtime.loader import find_app

from .conftest import CHARTS, VARIANTS, containers, variant_values
from .test_docker import run_cli


def expand(arg: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("chart", CHARTS)
def test_rendered_commands_parse(render, chart, variant):
    for where, c in containers(render(chart, variant_values(chart, variant))):
        env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
        argv = [expand(a, env) for a in [*c["command"], *c.get("args", [])]]
        assert argv[0] == "clara-stream", where
        assert not any("$(" in a for a in argv), f"{where}: unexpanded {argv}"
        code, out = run_cli([*argv[1:], "--help"])
        assert code == 0, f"{where}: {argv}: {out[-400:]}"
        if argv[1] == "run":
            assert find_app(argv[2]).name == argv[2]


def test_a_wrong_option_is_caught(render):
    """The check is not vacuous: an option the CLI lacks fails."""
    (_, c), = containers(render("clara-dicom-adapter"))
    code, _ = run_cli([*c["args"], "--dicom-prot=104", "--help"])
    assert code != 0
