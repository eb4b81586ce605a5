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
from tests.imaptest.results import Status, counts, report
from tests.imaptest.runner import TESTS_DIR, run_tests
from tests.imaptest.script import list_tests
from tests.imaptest.startup import Account, Target

PASSWORD = "imaptest-reference"
EXPECTED_SKIPS = {"urlauth": "URLAUTH", "urlauth-binary": "URLAUTH", "urlauth2": "URLAUTH",
                  "sort-partial": "CONTEXT=SORT"}
WORKERS = 4  # tests at once, each on its own user

# (test, text in it, replacement, what the failure must say). imaptest itself (release-2.3,
# built against Debian's dovecot-dev, on this Dovecot) fails each of these copies too, with the
# failure / command-group counts of IMAPTEST_COUNTS.
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


IMAPTEST_COUNTS = [(1, 9), (1, 9), (1, 17), (1, 12), (5, 7), (1, 4), (1, 18), (1, 3), (1, 3), (1, 24), (1, 25),
                   (1, 28), (2, 21), (1, 34), (11, 47), (1, 5), (1, 5), (1, 17)]

# Scripts for the format's rarer rules, with imaptest's own verdict on this Dovecot:
# name -> (script, failures, command groups run); (0, 0): skipped.
SYNTHETIC = {
    "maybe": ("messages: 2\nignore_extra_untagged: no\n\nok noop\n? 2 exists\n\nok fetch 1 (uid flags)\n"
              "* 1 fetch (uid $ flags $)\n? 1 fetch (flags (\\seen))\n\nok fetch 1:2 uid\n* $1 fetch (uid $u1)\n",
              1, 4),
    "maybe-not-enough": ("messages: 2\nignore_extra_untagged: no\n\nok fetch 1:2 uid\n* 1 fetch (uid $u1)\n"
                         "? 3 fetch (uid $u3)\n", 1, 2),
    "directives": ("messages: 3\n\nok store 1 flags (\\seen \\flagged)\n"
                   "* 1 fetch (flags ($!unordered $!noextra $!ignore=\\recent \\seen))\n"
                   "ok fetch 1 (uid flags)\n* 1 fetch ($!ordered uid $ flags $)\n"
                   "ok fetch 1 (flags uid)\n* 1 fetch ($!unordered=2 $!noextra uid $)\n", 2, 4),
    "directives-ignore-ban": ("messages: 3\n\nok store 1 flags (\\seen \\flagged)\n"
                              "* 1 fetch (flags ($!unordered $!noextra $!ignore=\\flagged \\seen))\n"
                              "ok fetch 1 (uid flags)\n* 1 fetch ($!unordered=2 $!extra $!ban=flags uid $)\n", 2, 3),
    "messages-wrap": ("messages: 10\n\nok fetch 10 (body.peek[header.fields (from)])\n"
                      "* 10 fetch (body[header.fields (from)] {{{\nFrom: user4@domain.org\n\n\n}}})\n"
                      "ok status $mailbox (messages)\n* status $mailbox (messages 10)\n", 0, 3),
    "reply-prefix-variables": ("state: created\ncapabilities: UIDPLUS\n\nappend $mailbox\nok [appenduid $v $u]\n"
                               "append $mailbox\nok [appenduid $v $u2]\nok select $mailbox\nok uid fetch $u2 uid\n"
                               "* 2 fetch (uid $u2)\nok search uid $u:$u2\n* search 1 2\n", 0, 6),
    "output-sleep": ("messages: 1\n\nok fetch 1 uid\n* 1 fetch (uid $uid)\n!output uid is $uid\n!sleep 10ms\n"
                     "ok noop\n", 0, 3),
    "bye": ("state: auth\nconnections: 2\n\n1 ok noop\n2 \"\" logout\n* bye\n1 ok noop\n", 0, 3),
    "variables-chained": ("messages: 2\n\nok fetch 1 (internaldate)\n* 1 fetch (internaldate \"$d-$m-$y $t $z\")\n"
                          "ok search 1:2 all\n* search $a $b\nok fetch $b uid\n* 2 fetch (uid $)\n", 0, 4),
    "second-user": ("connections: 2\nuser 2: $user2\n\n1 ok noop\n", 0, 0),
    "sequence-map": ("connections: 2\nmessages: 5\n\n1 ok store 2,4 +flags \\deleted\n1 ok expunge\n"
                     "2 ok fetch 5 uid\n* $5 fetch (uid $)\n* $2 expunge\n* $4 expunge\n2 ok fetch 1:* uid\n"
                     "* $3 fetch (uid $)\n! $4 fetch (uid $)\n", 2, 5),
    "bad-where-any-reply": ("messages: 1\n\n\"\" fetch 1 (nonsense)\nok noop\n", 1, 1),
}


# Tests whose commands carry literals (or append messages): also run with synchronising
# literals, for servers without LITERAL+ (imaptest itself gives up there).
LITERALS = ["append", "append-binary", "catenate", "catenate-multiappend", "multiappend", "fetch-body", "select"]


def _tests_dir() -> Path:
    require(None if TESTS_DIR.is_dir() else f"{TESTS_DIR} is missing", "imaptest's scripted tests")
    return TESTS_DIR


@pytest.fixture(scope="module")
def dovecot() -> Iterator[PrivateDovecot]:
    _tests_dir()
    require(available(), "Debian's Dovecot (dovecot-imapd)")
    users = [f"u{i}" for i in range(len(list_tests(TESTS_DIR)) + len(MUTATIONS) + len(SYNTHETIC) + len(LITERALS))]
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
    for (_, _, _, reason), result, imaptest in zip(MUTATIONS, results, IMAPTEST_COUNTS, strict=True):
        assert result.status is Status.FAIL, f"{result.name}: {result.status.value}\n{text}"
        assert reason in "\n".join(result.failures[0].lines()), f"{result.name}: wanted {reason!r}\n{result.report()}"
        assert (len(result.failures), result.groups_done) == imaptest, f"{result.name}: imaptest counts {imaptest}"


def test_the_formats_rarer_rules_score_as_imaptest_scores_them(dovecot: PrivateDovecot, tmp_path: Path) -> None:
    shutil.copy(TESTS_DIR / "default.mbox", tmp_path / "default.mbox")
    for name, (script, _, _) in SYNTHETIC.items():
        (tmp_path / name).write_text(script)
    names = list(SYNTHETIC)
    first_user = len(list_tests(TESTS_DIR)) + len(MUTATIONS)
    results = run_tests(_target(dovecot, names, first_user), tmp_path, names, workers=WORKERS)
    text = report(results, "synthetic scripts")
    print(text)
    got = {r.name: (len(r.failures), r.groups_done) for r in results}
    assert got == {name: (f, g) for name, (_, f, g) in SYNTHETIC.items()}, text
    assert next(r for r in results if r.name == "output-sleep").output == ["uid is 1"]
    assert next(r for r in results if r.name == "second-user").status is Status.SKIP


def test_synchronising_literals_work_too(dovecot: PrivateDovecot) -> None:
    first_user = len(list_tests(TESTS_DIR)) + len(MUTATIONS) + len(SYNTHETIC)
    target = _target(dovecot, LITERALS, first_user)
    target.literal_plus = False
    results = run_tests(target, TESTS_DIR, LITERALS, workers=WORKERS)
    assert {r.name: r.status for r in results} == dict.fromkeys(LITERALS, Status.PASS), report(results)
