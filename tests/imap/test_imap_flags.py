"""The system flags (RFC 3501 §2.3.2) are defined once, in ``imap.proto.flags``, and read everywhere."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from imap.backend import FolderStatus
from imap.proto.flags import SYSTEM_FLAGS, canonical, is_recent, is_system, normalise_flags

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / "imap" / "proto" / "flags.py"
NAMES = {flag.upper() for flag in SYSTEM_FLAGS}


def test_the_five_system_flags() -> None:
    assert SYSTEM_FLAGS == ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
    assert FolderStatus(1, 1, 1, 0, 0).permanent_flags == (*SYSTEM_FLAGS, "\\*")


@pytest.mark.parametrize(("flag", "system", "shown"), [
    ("\\SEEN", True, "\\Seen"), ("\\seen", True, "\\Seen"), ("\\Draft", True, "\\Draft"),
    ("\\Recent", False, "\\Recent"), ("$Forwarded", False, "$Forwarded"), ("Seen", False, "Seen"),
    ("\\Drafts", False, "\\Drafts"),
])
def test_system_flags_are_case_insensitive(flag: str, system: bool, shown: str) -> None:
    assert is_system(flag) is system
    assert canonical(flag) == shown


def test_normalise_drops_recent_and_duplicates() -> None:
    assert is_recent("\\RECENT") and not is_recent("\\Seen")
    assert normalise_flags(["\\seen", "\\Recent", "\\SEEN", "$Label", "\\flagged", "$Label"]) == [
        "\\Seen", "$Label", "\\Flagged"]


def _copies(path: Path) -> list[str]:
    """Literal collections naming two system flags or more: a copy of the set."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            texts = {i.value.upper() for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}
            if len(texts & NAMES) >= 2:
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_other_copy_of_the_system_flags() -> None:
    sources = [p for top in ("imap", "gateway") for p in sorted((ROOT / top).rglob("*.py")) if p != HOME]
    assert [hit for p in sources for hit in _copies(p)] == []


def test_the_copy_finder_finds_a_copy(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('A = {"\\\\SEEN", "\\\\DELETED"}\nB = ("\\\\Seen",)\nC = {"\\\\Draft": 1, "\\\\answered": 2}\n')
    assert [hit.split(":")[1] for hit in _copies(module)] == ["1", "3"]
