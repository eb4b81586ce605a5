"""A first run as a new operator makes it (issue 14): the "Try it" printed by ``gateway serve`` works as printed."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.gateway.serving import ROOT, commands_of, run_commands, serving


def try_it_block(output: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(output) if line.startswith("Try it"))
    end = next(i for i, line in enumerate(output) if line.startswith("Ctrl-C stops"))
    return output[start + 1:end]


def test_try_it_works_as_printed(tmp_path: Path) -> None:
    home = tmp_path / "var"
    with serving(home) as gw:
        block = try_it_block(gw.output)
        commands = commands_of(block)
        joined = "\n".join(block)
        # What a new operator needs: a hosted domain, a pro with a password, an open patient, an admin,
        # a message, the web pages; run with this installation's gateway from the project folder.
        for needed in ("domain hosted add", "pro add", "--password-stdin", "patient add", "--open", "admin add",
                       "smtplib", "http://127.0.0.1:", "/admin/"):
            assert needed in joined, needed
        assert all(c.split()[0] in ("export", "echo") or c.startswith(".venv/bin/") for c in commands), commands
        env = {k: v for k, v in gw.env.items() if k not in ("GATEWAY_HOME", "GATEWAY_CONFIG")}
        out = run_commands(commands, env, cwd=ROOT)
        assert "(open)" in out and "activation code:" in out and "secret:" in out
        gw.assert_still_serving()


def test_try_it_from_another_folder_names_the_full_path(tmp_path: Path) -> None:
    home = tmp_path / "var"
    with serving(home, cwd=tmp_path) as gw:
        commands = commands_of(try_it_block(gw.output))
        (line,) = [c for c in commands if "domain hosted add" in c]
        assert line.startswith(str(Path(sys.executable).parent / "gateway") + " ")
        env = {k: v for k, v in gw.env.items() if k not in ("GATEWAY_HOME", "GATEWAY_CONFIG")}
        run_commands(commands, env, cwd=tmp_path)
        gw.assert_still_serving()
