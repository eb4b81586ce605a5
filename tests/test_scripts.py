"""``scripts/bootstrap`` says what it installs and how long it takes (issue 14), installs per profile, once.

Run on a copy of the script with a stand-in Python whose ``venv`` and ``pip`` only record what
they are asked (the real install is what every other test runs in).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/usr/bin/env bash
case "$1 $2" in
    "-m venv") mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0 ;;
    "-m pip") echo "${@:3}" >> "$PIP_LOG"; sleep "${FAKE_PIP_SECONDS:-0}"; exit 0 ;;
esac
[ "$1" = "--version" ] && { echo "Python 3.11.99"; exit 0; }
exec %(python)s "$@"
"""


def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "bootstrap", root / "scripts" / "bootstrap")
    shutil.copy2(ROOT / "pyproject.toml", root / "pyproject.toml")
    fake = tmp_path / "python-fake"
    fake.write_text(FAKE_PYTHON % {"python": sys.executable})
    fake.chmod(0o755)
    return root


def bootstrap(root: Path, *args: str, pip_seconds: float = 0) -> tuple[str, list[str]]:
    log = root.parent / "pip.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "PYTHON": str(root.parent / "python-fake"), "PIP_LOG": str(log),
           "FAKE_PIP_SECONDS": str(pip_seconds), "BOOTSTRAP_TICK_SECONDS": "1"}
    proc = subprocess.run([str(root / "scripts" / "bootstrap"), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr, log.read_text().splitlines() if log.exists() else []


def test_first_run_says_what_and_how_long(tmp_path: Path) -> None:
    root = project(tmp_path)
    err, pip = bootstrap(root, "runtime", pip_seconds=2.5)
    assert "creating .venv" in err and "Python 3.11.99" in err
    count = len(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert f"installing the gateway and its {count} libraries (SQLAlchemy" in err
    assert "minutes the first time" in err and "still installing (1 s)" in err and ".venv ready" in err
    assert pip == ["install --quiet --upgrade pip", "install --quiet -e ."]
    # Done once: silent and nothing installed on the next run.
    err, pip = bootstrap(root, "runtime")
    assert err == "" and pip == []


def test_dev_profile_adds_the_test_tools_and_covers_runtime(tmp_path: Path) -> None:
    root = project(tmp_path)
    bootstrap(root, "runtime")
    err, pip = bootstrap(root)  # default: dev
    assert "test and lint tools" in err and "creating .venv" not in err
    assert pip[-1] == "install --quiet -e .[dev]"
    assert bootstrap(root, "runtime") == ("", [])
    # pyproject.toml changed: installed again.
    (root / "pyproject.toml").write_text((root / "pyproject.toml").read_text() + "\n# changed\n")
    assert bootstrap(root, "runtime")[1][-1] == "install --quiet -e ."


def test_unknown_profile_is_refused(tmp_path: Path) -> None:
    root = project(tmp_path)
    proc = subprocess.run([str(root / "scripts" / "bootstrap"), "everything"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2 and "unknown profile 'everything'" in proc.stderr
    assert not (root / ".venv").exists()
