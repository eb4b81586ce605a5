"""The Citus statement check of the PostgreSQL pass (issue 23): every statement the gateway sends.

Active when ``GATEWAY_TEST_STORE=postgresql`` (``scripts/test``'s second pass; tests/conftest.py
registers it). Statements are captured at the driver, on psycopg's ``Cursor.execute``,
``executemany`` and ``copy``: every path reaches it (the ORM and Core through every engine,
:mod:`gateway.store.raw`'s hot-path statements and ``Database.direct_read``, the bulk import's
``COPY``, the group commit's writer thread), where SQLAlchemy's ``before_cursor_execute`` misses
whatever runs on the driver's own cursor. Only the SQL text is kept, never a parameter.

The statement's origin is the innermost frame of our code under the plumbing
(``gateway/store/db.py``, ``raw.py``): in ``tests/`` or ``gateway/testing/`` it is the test's
own statement (set-up, assertions) and is not checked; under ``gateway/store/migrations/`` a
migration's. Every other statement is analysed (tests/dist_statements.py) unless a
``FANOUTS`` entry of ``gateway/store/distribution.py`` names a function on its stack.

At the end: a summary of the violating statement shapes, each with where it comes from;
``GATEWAY_DIST_REPORT=FILE`` writes them all as Markdown. A violation fails the run (a new
statement that Citus could not route is a defect, or a fan-out to list with its reason).
Under pytest-xdist each worker sends its findings to the controller (``workeroutput``).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import pytest

from gateway.store import distribution as dist

ROOT = Path(__file__).resolve().parent.parent
_OURS = tuple(str(ROOT / p) + os.sep for p in ("gateway", "smtp", "imap", "routing", "crypto", "healthdocs", "tests"))
_PLUMBING = (str(ROOT / "gateway" / "store" / "db.py"), str(ROOT / "gateway" / "store" / "raw.py"))
_TESTS = (str(ROOT / "tests") + os.sep, str(ROOT / "gateway" / "testing") + os.sep)
_MIGRATIONS = str(ROOT / "gateway" / "store" / "migrations") + os.sep
_PLUMBING_MODULES = ("gateway.store.db:", "gateway.store.raw:")
KEY = "dist_statements"

Origin = tuple[str, tuple[str, ...]]  # "path:line function", the "module:function" names on the stack (innermost first)


def _origin(frame: FrameType | None) -> Origin | None:
    """Where a statement comes from, or None for a test's or a migration's own statement."""
    where: str | None = None
    names: list[str] = []
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(_OURS) and "site-packages" not in path:
            if path.startswith(_MIGRATIONS):
                return None
            if where is None and not path.startswith(_PLUMBING):
                if path.startswith(_TESTS):
                    return None
                where = f"{os.path.relpath(path, ROOT)}:{frame.f_lineno} {frame.f_code.co_name}"
            if not path.startswith(_TESTS):
                names.append(f"{frame.f_globals.get('__name__', '?')}:{frame.f_code.co_name}")
        frame = frame.f_back
    return None if where is None else (where, tuple(names))


_ACTIVE: list[Capture] = []


def _install() -> None:
    """Wrap psycopg's ``Cursor.execute``, ``executemany`` and ``copy`` once per process: each
    statement is shown to every started :class:`Capture`."""
    for name in ("execute", "executemany", "copy"):
        original = getattr(psycopg.Cursor, name)
        if getattr(original, "_dist_capture", False):
            continue

        def wrapper(self: Any, query: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            for capture in _ACTIVE:
                capture.record(query, self)
            return _original(self, query, *args, **kwargs)

        wrapper._dist_capture = True  # type: ignore[attr-defined]
        setattr(psycopg.Cursor, name, wrapper)


class Capture:
    """Counts (SQL text, origin) pairs; installed once per process on psycopg's cursor."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, Origin]] = Counter()
        self._lock = threading.Lock()

    def record(self, query: Any, cursor: Any) -> None:
        try:
            if isinstance(query, bytes):
                sql = query.decode()
            elif isinstance(query, str):
                sql = query
            else:  # psycopg.sql.Composable
                sql = query.as_string(cursor.connection)
        except Exception:
            return
        origin = _origin(sys._getframe(2))  # the frame that called the driver (record, wrapper above it)
        if origin is None:
            return
        with self._lock:
            self.seen[(sql, origin)] += 1

    def start(self) -> None:
        _install()
        _ACTIVE.append(self)

    def stop(self) -> None:
        _ACTIVE.remove(self)

    def findings(self) -> list[dict[str, Any]]:
        from tests.dist_statements import analyse, shape

        out: dict[tuple[str, ...], dict[str, Any]] = {}
        for (sql, (where, names)), count in self.seen.items():
            for problem in analyse(sql):
                callers = [n for n in dict.fromkeys(names) if not n.startswith(_PLUMBING_MODULES)]
                allowed = allowance(problem.rule, problem.table, callers[0] if callers else "")
                via = " < ".join(callers[1:3])  # an ORM flush runs where the next query is: say who called
                row = {"rule": problem.rule, "table": problem.table, "detail": problem.detail,
                       "shape": shape(sql), "where": where + (f" < {via}" if via else ""), "allowed": allowed}
                key = (problem.rule, problem.table, problem.detail, str(row["shape"]), str(row["where"]))
                if key in out:
                    out[key]["count"] += count
                else:
                    out[key] = {**row, "count": count}
        return list(out.values())


def allowance(rule: str, table: str, sender: str) -> str | None:
    """The reason a fan-out of ``table`` sent by ``sender`` (``module:function``) is allowed, if it is."""
    if rule != "unrouted":
        return None
    return next((f.reason for f in dist.FANOUTS if f.table == table and f.where == sender), None)


def merge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows:
        key = (row["rule"], row["table"], row["detail"], row["shape"], row["where"])
        if key in out:
            out[key]["count"] += row["count"]
        else:
            out[key] = dict(row)
    return sorted(out.values(), key=lambda r: (r["allowed"] is not None, r["table"], r["rule"], r["where"]))


def markdown(rows: list[dict[str, Any]]) -> str:
    """The findings grouped by table: rule, why, how often, where from, the statement's shape."""
    bad = [r for r in rows if r["allowed"] is None]
    lines = [f"{len(bad)} violating statement shapes on {len({r['table'] for r in bad})} tables "
             f"({len(rows) - len(bad)} allowed fan-outs).", ""]
    for table in sorted({r["table"] for r in rows}):
        lines += [f"## {table}", ""]
        for r in (r for r in rows if r["table"] == table):
            status = f"allowed: {r['allowed']}" if r["allowed"] else "violation"
            lines += [f"- {r['rule']}: {r['detail']} ({status}; {r['count']}×) at `{r['where']}`",
                      f"  `{r['shape']}`"]
        lines.append("")
    return "\n".join(lines)


class StatementCheck:
    """The pytest side: report (and fail) at the end of the session, xdist-aware."""

    def __init__(self, config: pytest.Config, *, fail: bool) -> None:
        self.config = config
        self.fail = fail
        self.capture = Capture()
        self.capture.start()
        self.collected: list[dict[str, Any]] = []
        self.is_worker = hasattr(config, "workerinput")
        self.tests = 0

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        """With ``GATEWAY_DIST_REPORT``: this process's findings so far beside the report, every
        50 tests (a long pass stopped early still leaves them)."""
        self.tests += 1
        report = os.environ.get("GATEWAY_DIST_REPORT")
        if report and self.tests % 50 == 0:
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            Path(f"{report}.{worker}.json").write_text(json.dumps(self.capture.findings()))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        rows = self.capture.findings()
        if self.is_worker:
            self.config.workeroutput[KEY] = json.dumps(rows)  # type: ignore[attr-defined]
            return
        self.collected = merge(self.collected + rows)
        report = os.environ.get("GATEWAY_DIST_REPORT")
        if report:
            Path(report).write_text(markdown(self.collected))
        if self.fail and any(r["allowed"] is None for r in self.collected) and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        bad = [r for r in self.collected if r["allowed"] is None]
        terminalreporter.section("Citus statement check (issue 23)")
        terminalreporter.write_line(
            f"{len(bad)} statement shapes on distributed tables without an equality on the distribution "
            f"column (or joined off it){'' if not bad else ': the run fails (gateway/store/distribution.py)'}")
        for r in bad[:200]:
            terminalreporter.write_line(f"{r['table']} {r['rule']} ({r['detail']}) at {r['where']}: {r['shape'][:300]}")


class XdistController:
    def __init__(self, check: StatementCheck) -> None:
        self.check = check

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        rows = json.loads(getattr(node, "workeroutput", {}).get(KEY, "[]"))
        self.check.collected = merge(self.check.collected + rows)


def register(config: pytest.Config, *, fail: bool = True) -> None:
    check = StatementCheck(config, fail=fail)
    config.pluginmanager.register(check, "dist-statement-check")
    if config.pluginmanager.hasplugin("xdist") and not check.is_worker:
        config.pluginmanager.register(XdistController(check), "dist-statement-check-xdist")
