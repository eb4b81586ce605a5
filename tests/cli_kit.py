"""Running the ``gateway`` command line in-process, as the tests of every package do."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gateway.app.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    """``gateway ARGV...``: exit status (argparse's usage errors included), stdout, stderr."""
    with pytest.MonkeyPatch.context() as patch:
        if stdin is not None:
            patch.setattr("sys.stdin", io.StringIO(stdin))
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def new_home(capsys: pytest.CaptureFixture[str], folder: Path) -> str:
    """A state folder made by ``gateway init`` (SQLite)."""
    path = str(folder / "gw")
    assert run(capsys, "init", "--home", path)[0] == 0
    return path
