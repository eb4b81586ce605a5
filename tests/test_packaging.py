"""A clean install says nothing alarming (issue 14) and carries the web templates and static files.

Both the editable install that ``scripts/bootstrap`` makes and a wheel are built from a copy
of the project in a temporary folder, with the project's own pip (a recent one: older pips
hid the build backend's warnings).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "smtp", "imap", "routing", "crypto", "healthdocs", "saslwire")
BACKEND_WARNING = re.compile(r"BuildBackendWarning|SetuptoolsDeprecationWarning|SetuptoolsWarning|"
                             r"is absent from the `packages` configuration|Editable installation")


def _copy_project(dest: Path) -> Path:
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    for name in PACKAGES:
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300,
                          check=False)
    if proc.returncode != 0 and "No matching distribution found for setuptools" in proc.stderr:
        require("no package index to fetch setuptools from", "a Python package index")
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_project(tmp_path_factory.mktemp("packaging") / "project")


def test_editable_install_has_no_warnings(project: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    proc = _pip("--python", str(venv / "bin" / "python"), "install", "--quiet", "--no-deps", "-e", str(project))
    warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if BACKEND_WARNING.search(line)]
    assert warnings == [], "\n".join(warnings)
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import importlib.util as u; print(u.find_spec('gateway.web.patient').submodule_search_locations[0])"],
        capture_output=True, text=True, check=True, timeout=60, cwd=tmp_path)
    templates = Path(found.stdout.strip()) / "templates"
    assert (templates / "inbox.html").is_file() and templates.is_relative_to(project)


def test_wheel_carries_templates_static_files_and_migrations(project: Path, tmp_path: Path) -> None:
    proc = _pip("wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist"), str(project))
    warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if BACKEND_WARNING.search(line)]
    assert warnings == [], "\n".join(warnings)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(ROOT)) for area in ("patient", "admin") for kind in ("templates", "static")
                for p in (ROOT / "gateway" / "web" / area / kind).iterdir() if p.is_file()}
    expected |= {"gateway/py.typed", "gateway/store/migrations/script.py.mako"}
    versions = ROOT / "gateway" / "store" / "migrations" / "versions"
    expected |= {str(p.relative_to(ROOT)) for p in versions.glob("*.py")}
    assert expected <= names, sorted(expected - names)
    assert {n.split("/", 1)[0] for n in names} == {*PACKAGES, wheel.name.split("-")[0] + "-0.1.0.dist-info"}
