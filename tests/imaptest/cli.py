"""Run imaptest's scripted tests by hand: ``.venv/bin/python -m tests.imaptest.cli --help``.

``--dovecot`` starts a private Debian Dovecot (a fresh user per test) and runs against it;
otherwise give the server and the one account every test runs on.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from tests.imaptest.results import Status, counts, report
from tests.imaptest.runner import TESTS_DIR, run_tests
from tests.imaptest.script import list_tests
from tests.imaptest.startup import Account, Target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.imaptest.cli", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="tests to run (default: every test of the folder)")
    parser.add_argument("--tests", type=Path, default=TESTS_DIR, help="the tests folder (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=143)
    parser.add_argument("--user", help="the account every test runs on")
    parser.add_argument("--password")
    parser.add_argument("--dovecot", action="store_true",
                        help="start a private Dovecot (dovecot-imapd) with a fresh user per test and run against it")
    parser.add_argument("--timeout", type=float, default=30.0, help="per test, seconds (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="tests run at once (default: %(default)s)")
    parser.add_argument("--verbose", "-v", action="store_true", help="also show warnings and !output lines")
    options = parser.parse_args(argv)
    names = options.names or list_tests(options.tests)
    start = time.monotonic()
    if options.dovecot:
        from tests.imaptest.dovecot import private_dovecot

        users = {name: f"u{i}" for i, name in enumerate(names, 1)}
        with private_dovecot(list(users.values()), "pass") as server:
            target = Target(options.host, server.port, lambda n: Account(users[n], "pass"), timeout=options.timeout)
            results = run_tests(target, options.tests, names, options.workers)
            title = f"a private Dovecot on 127.0.0.1:{server.port}"
    else:
        if not options.user or options.password is None:
            parser.error("--user and --password are needed (or --dovecot)")
        account = Account(options.user, options.password)
        target = Target(options.host, options.port, lambda _n: account, timeout=options.timeout)
        results = run_tests(target, options.tests, names, options.workers)
        title = f"{options.host}:{options.port}"
    print(report(results, title, time.monotonic() - start))
    if options.verbose:
        for result in results:
            for line in result.warnings + result.output:
                print(f"{result.name}: {line}")
    c = counts(results)
    return 1 if c[Status.FAIL] or c[Status.TIMEOUT] else 0


if __name__ == "__main__":
    raise SystemExit(main())
