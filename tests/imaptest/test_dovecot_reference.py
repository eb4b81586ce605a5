"""The runner is right only if it reproduces the reference (issue 18): Debian's Dovecot 2.3.

A private ``dovecot-imapd`` on loopback (``tests/imaptest/dovecot.py``), a fresh user, hence
a fresh Maildir, per test. imaptest itself scores it 67 PASS / 0 FAIL / 4 SKIP on these 71
tests: the three URLAUTH tests and CONTEXT=SORT's ``sort-partial`` are skipped. So must we.

A runner that passes everything would score that too, so the second test breaks one
expectation at a time in copies of the tests (each kind of rule: untagged replies in any
order, ``!`` replies, tagged replies in both forms, pipelined tags, ``$variables``, ``$n``,
``$!`` directives, literals, several connections, ``ignore_extra_untagged``) and checks the
runner reports each as FAIL, for the right reason.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.imaptest.dovecot import PrivateDovecot, available, private_dovecot
from tests.imaptest.runner import TESTS_DIR, Account, Status, Target, counts, report, run_tests
from tests.imaptest.script import list_tests

PASSWORD = "imaptest-reference"
EXPECTED_SKIPS = {"urlauth": "URLAUTH", "urlauth-binary": "URLAUTH", "urlauth2": "URLAUTH",
                  "sort-partial": "CONTEXT=SORT"}
WORKERS = 4  # tests at once, each on its own user

# (test, text in it, replacement, what the failure must say)
MUTATIONS = [
    ("select", "* 2 recent\n* ok [unseen 1]", "* 3 recent\n* ok [unseen 1]", "Missing 1 untagged"),
    ("select", "ok [read-write]", "ok [read-only]", "Expected tagged reply 'ok [read-only]'"),
    ("fetch", "ok fetch * uid\n* 3 fetch (uid $uid3)", "ok fetch * uid\n! 3 fetch (uid $uid3)", "Unexpected untagged"),
    ("store", "* 2 fetch (flags (\\seen $$hello $$world))", "* 2 fetch (flags (\\seen $$hello))",
     "Missing 1 untagged"),
    ("fetch", "* status $mailbox (uidnext $uidnext)", "* status $mailbox (uidnext 1)", "Missing 1 untagged"),
    ("close", "* $3 expunge", "* $2 expunge", "(expanded: * 1 expunge)"),
    ("expunge2", "2 ok search all\n! $1 expunge", "2 ok search all\n* $1 expunge", "Missing 1 untagged"),
    ("pipeline", "tag3 ok\ntag4 ok\n\ntag1 status", "tag3 no\ntag4 ok\n\ntag1 status",
     "Expected tagged reply 'tag3 no'"),
    ("pipeline", "* status ${mailbox}4 (messages 0)", "* status ${mailbox}4 (messages 1)", "Missing 1 untagged"),
    ("copy", "2 ok noop\n* 3 exists", "2 ok noop\n* 4 exists", "connection 2"),
    ("fetch-body", "body1\n\n\n}}})\nok fetch 1 rfc822.text", "body2\n\n\n}}})\nok fetch 1 rfc822.text",
     "Missing 1 untagged"),
    ("esearch", "* esearch (tag $tag) uid min $uid1", "* esearch (tag $tag) uid min $uid2", "Missing 1 untagged"),
    ("listext", 'bad list (imaptest) "" ""', 'ok list (imaptest) "" ""', "got 'BAD"),
    ("listext", "$!ban=\\noselect \\subscribed \\nonexistent", "$!ban=\\nonexistent \\subscribed",
     "Missing 1 untagged"),
    ("search-flags", "messages: 5\n", "messages: 5\nignore_extra_untagged: no\n", "unexpected untagged replies"),
    ("append-binary", "* 1 fetch (binary.size[1] 7 binary[1]", "* 1 fetch (binary.size[1] 8 binary[1]",
     "Missing 1 untagged"),
    ("thread", "* thread (3 2)(1)", "* thread (2 3)(1)", "Missing 1 untagged"),
    ("fetch", "* 1 fetch (flags () internaldate $intdate1 rfc822.size $size1)",
     "* 1 fetch (flags (\\seen) internaldate $intdate1 rfc822.size $size1)", "Missing 1 untagged"),
]


def _tests_dir() -> Path:
    require(None if TESTS_DIR.is_dir() else f"{TESTS_DIR} is missing", "imaptest's scripted tests")
    return TESTS_DIR


@pytest.fixture(scope="module")
def dovecot() -> Iterator[PrivateDovecot]:
    _tests_dir()
    require(available(), "Debian's Dovecot (dovecot-imapd)")
    users = [f"u{i}" for i in range(len(list_tests(TESTS_DIR)) + len(MUTATIONS))]
    with private_dovecot(users, PASSWORD) as server:
        yield server


def _target(server: PrivateDovecot, names: list[str], first_user: int = 0) -> Target:
    accounts = {name: Account(server.users[first_user + i], PASSWORD) for i, name in enumerate(names)}
    return Target("127.0.0.1", server.port, accounts.__getitem__, timeout=30)


def test_dovecot_scores_the_reference_67_pass_0_fail_4_skip(dovecot: PrivateDovecot) -> None:
    names = list_tests(TESTS_DIR)
    start = time.monotonic()
    results = run_tests(_target(dovecot, names), TESTS_DIR, names, workers=WORKERS)
    text = report(results, f"Debian's Dovecot on 127.0.0.1:{dovecot.port}", time.monotonic() - start)
    print(text)
    by_status = counts(results)
    assert (by_status[Status.PASS], by_status[Status.FAIL], by_status[Status.SKIP], by_status[Status.TIMEOUT]) == (
        67, 0, 4, 0), text + "\n--- dovecot.log\n" + dovecot.log_tail()
    skipped = {r.name: r.reason for r in results if r.status is Status.SKIP}
    assert set(skipped) == set(EXPECTED_SKIPS), text
    for name, capability in EXPECTED_SKIPS.items():
        assert capability.lower() in skipped[name].lower(), (name, skipped[name])
    assert {r.name for r in results if r.status is Status.PASS} == set(names) - set(EXPECTED_SKIPS)


def test_each_broken_expectation_is_reported_as_a_failure(dovecot: PrivateDovecot, tmp_path: Path) -> None:
    folder = tmp_path / "mutated"
    shutil.copytree(TESTS_DIR, folder)
    names = []
    for i, (name, old, new, _) in enumerate(MUTATIONS):
        original = (TESTS_DIR / name).read_bytes()
        assert old.encode() in original, (name, old)
        mutated = f"{name}-broken{i}"
        (folder / mutated).write_bytes(original.replace(old.encode(), new.encode(), 1))
        if (TESTS_DIR / f"{name}.mbox").exists():
            shutil.copy(TESTS_DIR / f"{name}.mbox", folder / f"{mutated}.mbox")
        names.append(mutated)
    first_user = len(list_tests(TESTS_DIR))
    results = run_tests(_target(dovecot, names, first_user), folder, names, workers=WORKERS)
    text = report(results, "mutated copies")
    print(text)
    for (_, _, _, reason), result in zip(MUTATIONS, results, strict=True):
        assert result.status is Status.FAIL, f"{result.name}: {result.status.value}\n{text}"
        assert reason in "\n".join(result.failures[0].lines()), f"{result.name}: wanted {reason!r}\n{result.report()}"
