"""The design card's layout: our five packages resolve here, and the import direction holds."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "smtp", "imap", "routing", "crypto")
LEAVES = ("smtp", "imap", "routing", "crypto")


@pytest.mark.parametrize("name", PACKAGES)
def test_package_resolves_inside_this_repository(name: str) -> None:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).resolve() == ROOT / name / "__init__.py", f"{name} resolves to {spec.origin}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}: relative import; use absolute imports")
            if node.module:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaf_packages_import_no_sibling_and_not_gateway(leaf: str) -> None:
    forbidden = set(PACKAGES) - {leaf}
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & forbidden)
        for path in (ROOT / leaf).rglob("*.py")
        if _imports(path) & forbidden
    }
    assert offenders == {}, f"{leaf} must not import {sorted(forbidden)}: {offenders}"


def test_pyproject_lists_every_package() -> None:
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in PACKAGES for p in (ROOT / top).rglob("__init__.py")
    }
    assert on_disk <= listed, f"packages missing from pyproject.toml: {sorted(on_disk - listed)}"


def _gateway_imports(path: Path) -> set[str]:
    """Every ``gateway.*`` module a file imports (function-local imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("gateway."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gateway"):
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_shared_operations_import_neither_the_web_nor_the_command_line() -> None:
    """gateway/operations/ is called by both the CLI and the admin web: it depends on neither."""
    forbidden = ("gateway.web", "gateway.app.cli.main", "gateway.app.context", "gateway.app.server")
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in _gateway_imports(path) if n.startswith(forbidden))
        for path in (ROOT / "gateway" / "operations").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert offenders, "gateway/operations/ is missing"
