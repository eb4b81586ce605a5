"""``scripts/node-deps`` installs the test identity provider once per lock file, and says so when
Node or npm is missing (``scripts/test`` then fails in CI, skips the OIDC tests elsewhere).

Run on a copy of the script with a stand-in ``npm`` that records its arguments (the real install
is what tests/oidc/test_verifier.py runs against).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FAKE_NPM = """#!/usr/bin/env bash
echo "$@" >> "$NPM_LOG"
mkdir -p "$3/node_modules/oidc-provider"
"""


def _project(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    (root / "tests" / "oidc").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "node-deps", root / "scripts" / "node-deps")
    shutil.copy2(ROOT / "tests" / "oidc" / "package-lock.json", root / "tests" / "oidc" / "package-lock.json")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(FAKE_NPM)
    (bin_dir / "npm").chmod(0o755)
    (bin_dir / "node").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "node").chmod(0o755)
    for tool in ("bash", "dirname", "sha256sum", "cut", "touch", "mkdir", "sh"):  # and nothing else: no real npm
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    return root, bin_dir


def _run(root: Path, path: str, log: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path, "NPM_LOG": str(log)}
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run([bash, str(root / "scripts" / "node-deps")], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_installs_once_per_lock_file(tmp_path: Path) -> None:
    root, bin_dir = _project(tmp_path)
    log = tmp_path / "npm.log"
    path = str(bin_dir)
    first = _run(root, path, log)
    assert first.returncode == 0, first.stderr
    assert "installing oidc-provider" in first.stderr
    assert log.read_text().splitlines() == ["ci --prefix tests/oidc --no-audit --no-fund --loglevel=error"]
    again = _run(root, path, log)
    assert again.returncode == 0 and again.stderr == ""
    assert len(log.read_text().splitlines()) == 1
    lock = root / "tests" / "oidc" / "package-lock.json"
    lock.write_text(lock.read_text() + "\n")  # a changed lock file installs again
    assert _run(root, path, log).returncode == 0
    assert len(log.read_text().splitlines()) == 2


def test_without_npm_says_so_and_fails(tmp_path: Path) -> None:
    root, bin_dir = _project(tmp_path)
    (bin_dir / "npm").unlink()
    result = _run(root, str(bin_dir), tmp_path / "npm.log")
    assert result.returncode == 1
    assert "npm is not installed" in result.stderr


def test_scripts_test_runs_it_and_requires_it_in_ci() -> None:
    text = (ROOT / "scripts" / "test").read_text()
    assert "if ! scripts/node-deps; then" in text
    block = text.split("if ! scripts/node-deps; then", 1)[1].split("fi\nif", 1)[0]
    assert 'if [ "${CI:-}" = "true" ]' in block and "exit 1" in block
