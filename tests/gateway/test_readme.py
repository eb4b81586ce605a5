"""The README's "Trying it" runs top to bottom against a running gateway (issue 14).

The block is read from README.md, so commands added there later are run too. Nothing is
substituted but the state folder (``$PWD/var``) and the development ports, which the test
gateway moves to free ports. Every command must exit 0, and the gateway must still serve.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.gateway.serving import ROOT, commands_of, run_commands, serving

DEV_PORTS = {"mx": 2525, "submission": 2587, "submissions": 2465, "imap": 1143, "imaps": 1993, "http": 8080}


def trying_it_block(readme: str) -> list[str]:
    """The first ``sh`` code block of the "Trying it" section."""
    section = re.search(r"^## Trying it\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert section, "README.md has no '## Trying it' section"
    block = re.search(r"^```(?:sh|bash|shell)\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, "the 'Trying it' section has no sh code block"
    return block.group(1).splitlines()


def substitute(command: str, home: Path, ports: dict[str, int]) -> str:
    command = command.replace("$PWD/var", str(home)).replace("${PWD}/var", str(home))
    for name, dev in DEV_PORTS.items():
        command = re.sub(rf"(?<![\d.]){dev}(?!\d)", str(ports[name]), command)
    return command


def test_block_parsing() -> None:
    lines = ["# a comment", "", "export GATEWAY_HOME=$PWD/var   # where", "a \\", "  b  # c", "x 2587 12587"]
    commands = commands_of(lines)
    assert commands == ["export GATEWAY_HOME=$PWD/var   # where", "a b  # c", "x 2587 12587"]
    ports = {name: 40000 + i for i, name in enumerate(DEV_PORTS)}
    assert substitute(commands[2], Path("/h"), ports) == f"x {ports['submission']} 12587"
    assert substitute(commands[0], Path("/h"), ports).startswith("export GATEWAY_HOME=/h ")


def test_readme_trying_it_runs_against_a_running_gateway(tmp_path: Path) -> None:
    commands = commands_of(trying_it_block((ROOT / "README.md").read_text(encoding="utf-8")))
    assert len(commands) >= 5
    home = tmp_path / "var"
    before = snapshot(ROOT / "var")  # the developer's own state folder is never touched
    with serving(home) as gw:
        ports = {name: gw.address(name)[1] for name in DEV_PORTS}
        out = run_commands([substitute(c, home, ports) for c in commands], gw.env, cwd=ROOT)
        gw.assert_still_serving()
    assert "(open)" in out and "audit trail intact" in out
    assert snapshot(ROOT / "var") == before


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    if not folder.is_dir():
        return {}
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}
