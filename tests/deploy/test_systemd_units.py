"""The systemd units in ``deploy/systemd/`` (issue 14): ``systemd-analyze verify`` passes, hardening holds.

No running systemd is needed: ``verify`` and ``security --offline`` work on a root folder
holding a copy of the system's unit files, our units, and an executable at every path the
units run (``verify`` refuses a unit whose ``ExecStart`` binary does not exist; the real one
is installed by docs/deploy.md). Any warning (an unknown key, a bad value) fails the test.
"""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.app.cli.main import build_parser
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
SERVE, UPGRADE = "gateway.service", "gateway-db-upgrade.service"
STATE = "/var/lib/gateway"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def exec_lines(name: str) -> list[list[str]]:
    service = unit(name)["Service"]
    return [shlex.split(service[key]) for key in ("ExecStart", "ExecReload") if key in service]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    analyze = shutil.which("systemd-analyze")
    require(None if analyze else "systemd-analyze not found (scripts/system-deps installs systemd)",
            "systemd-analyze")
    require(None if SYSTEM_UNITS.is_dir() else f"{SYSTEM_UNITS} not found", "systemd unit files")
    base = tmp_path_factory.mktemp("systemd-root")
    shutil.copytree(SYSTEM_UNITS, base / "usr/lib/systemd/system", symlinks=True)
    target = base / "etc/systemd/system"
    target.mkdir(parents=True)
    for name in (SERVE, UPGRADE):
        shutil.copy2(UNITS / name, target / name)
        for argv in exec_lines(name):
            binary = base / argv[0].lstrip("/")
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("#!/bin/sh\nexit 0\n")
            binary.chmod(0o755)
    return base


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args, f"--root={root}"], capture_output=True, text=True,
                          timeout=120, check=False)


def test_units_pass_systemd_analyze_verify(root: Path) -> None:
    proc = analyze(root, "verify", "--man=no", SERVE, UPGRADE)
    assert proc.returncode == 0 and proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stderr


def test_verify_catches_a_broken_unit(root: Path) -> None:
    """The check above can fail: an unknown key and a bad value are reported."""
    broken = root / "etc/systemd/system" / "gateway-broken.service"
    text = (UNITS / SERVE).read_text()
    broken.write_text(text.replace("ProtectSystem=strict", "ProtectSystem=sometimes\nNoSuchKey=1"))
    try:
        proc = analyze(root, "verify", "--man=no", "gateway-broken.service")
    finally:
        broken.unlink()
    assert "NoSuchKey" in proc.stderr and "sometimes" in proc.stderr


@pytest.mark.parametrize("name", [SERVE, UPGRADE])
def test_exposure_is_low(root: Path, name: str) -> None:
    proc = analyze(root, "security", "--offline=true", "--no-pager", name)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "Overall exposure level" in x)
    score = float(line.split(":", 1)[1].split()[0])
    assert score <= 2.5, line


def test_hardening_and_commands() -> None:
    serve, upgrade = unit(SERVE)["Service"], unit(UPGRADE)["Service"]
    for service in (serve, upgrade):
        assert service["User"] == service["Group"] == "gateway"
        assert service["ProtectSystem"] == "strict" and service["ReadWritePaths"] == STATE
        assert service["PrivateTmp"] == service["NoNewPrivileges"] == service["ProtectHome"] == "yes"
        assert service["UMask"] == "0077" and service["StateDirectoryMode"] == "0700"
    assert serve["CapabilityBoundingSet"] == serve["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert upgrade["CapabilityBoundingSet"] == "" and "AmbientCapabilities" not in upgrade
    assert upgrade["Type"] == "oneshot"
    assert serve["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert unit(UPGRADE)["Unit"]["Before"] == SERVE and UPGRADE in unit(SERVE)["Unit"]["After"]
    # The command lines are ones the gateway accepts, on the state folder.
    (start,) = [argv for argv in exec_lines(SERVE) if argv[0].endswith("/gateway")]
    (migrate,) = exec_lines(UPGRADE)
    for argv, command in ((start, "serve"), (migrate, "db")):
        args = build_parser().parse_args(argv[1:])
        assert args.command == command and args.home == STATE
