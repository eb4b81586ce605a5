"""Every ``gateway`` command answers ``--help``; every ``list``/``show`` accepts ``--json``."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Iterator

import pytest

from gateway.app.cli.main import build_parser, main


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                         argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaves(child, (*path, name))


LEAVES = dict(_leaves(build_parser()))


def test_the_new_commands_are_there() -> None:
    for command in (("queue", "list"), ("queue", "show"), ("queue", "retry"), ("queue", "bounce"), ("queue", "cancel"),
                    ("pro", "show"), ("pro", "passwd"), ("pro", "disable"), ("pro", "enable"), ("pro", "remove"),
                    ("patient", "list"), ("patient", "close"), ("patient", "delete"), ("admin", "list"),
                    ("admin", "disable"), ("admin", "enable"), ("admin", "tokens"), ("admin", "revoke"),
                    ("domain", "trust", "set")):
        assert command in LEAVES, command


@pytest.mark.parametrize("command", sorted(LEAVES), ids=" ".join)
def test_help(command: tuple[str, ...]) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0 and out.getvalue().startswith(f"usage: gateway {' '.join(command)}")
    options = {o for a in LEAVES[command]._actions for o in a.option_strings}
    if command[-1] in ("list", "show", "tokens"):
        assert "--json" in options, f"gateway {' '.join(command)} lists or shows: it needs --json"
