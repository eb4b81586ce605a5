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
