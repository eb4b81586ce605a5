"""Which statements Citus could not route to one shard (issue 23): the analysis, on SQL text alone.

Parsed with sqlglot (a maintained SQL parser with a PostgreSQL dialect and a typed tree: a
hand-written parser would have to know joins, sub-queries, ``INSERT ... SELECT``, ``RETURNING``
and ``ON CONFLICT`` as well). For each query block (a SELECT, UPDATE, DELETE or INSERT and each
sub-query) the equalities joined by AND in WHERE and JOIN ... ON make classes of equal columns;
a class holding a bound parameter or a literal is pinned. The rules of
``gateway/store/distribution.py``:

- ``unrouted``: a distributed table whose distribution column is not pinned (an INSERT or a
  COPY must name the column); ``column IN (values)`` pins it in a read (Citus prunes to the
  values' shards, a fan-out bounded by the list), but in a ``FOR UPDATE/SHARE`` only with one
  value (Citus refuses to lock rows on several shards);
- ``join``: two distributed tables in one block not co-located, or not equal on their
  distribution columns;
- ``correlated``: a sub-query on a distributed table that refers to a reference table of an
  outer block;
- ``moved``: an UPDATE that sets a distributed table's distribution column (Citus refuses to
  move a row to another shard: insert the row under its new value and delete the old one).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlglot
from sqlglot import exp

from gateway.store import distribution as dist
from gateway.store.models import Base

logging.getLogger("sqlglot").setLevel(logging.ERROR)

COLUMNS: dict[str, frozenset[str]] = {name: frozenset(t.columns.keys()) for name, t in Base.metadata.tables.items()}


def _columns(table: str) -> frozenset[str]:
    """The models' columns, and the distribution column even before a migration adds it."""
    k = dist.TABLES.get(table)
    return COLUMNS.get(table, frozenset()) | ({k.column} if isinstance(k, dist.Distributed) else set())


BLOCKS = (exp.Select, exp.Update, exp.Delete, exp.Insert)


@dataclass(frozen=True)
class Problem:
    rule: str  # unrouted | join | correlated | moved | unparsed
    table: str
    detail: str


def normalise(sql: str) -> str:
    """psycopg's placeholders as sqlglot reads them; long lists of them folded to one."""
    text = re.sub(r"%\((\w+)\)s", r":\1", sql).replace("%s", "?")
    text = re.sub(r":(\w+?)_\d+(_\d+)?\b", r":\1", text)  # expanding IN / insertmanyvalues names
    return text


def shape(sql: str) -> str:
    """The statement as reported: placeholders unnamed, string literals hidden, repeated
    ``(?, ?), (?, ?)`` groups and ``?, ?, ?`` lists folded (never a value)."""
    text = re.sub(r"%\(\w+\)s|%s|\$\d+", "?", sql)
    text = re.sub(r"'(?:[^']|'')*'", "'…'", text)
    text = re.sub(r"\?(?:\s*,\s*\?)+", "?, …", text)
    text = re.sub(r"(\([^()]*\))(?:\s*,\s*\([^()]*\))+", r"\1, …", text)
    return re.sub(r"\s+", " ", text).strip()


@lru_cache(maxsize=20_000)
def analyse(sql: str) -> tuple[Problem, ...]:
    """The problems of one statement (cached: the same text comes back thousands of times)."""
    head = sql.lstrip()[:12].upper()
    if head.startswith("COPY"):
        return _copy(sql)
    if not head.startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")):
        return ()  # BEGIN, SAVEPOINT, LISTEN, SET, DDL (migrations)
    try:
        tree = sqlglot.parse_one(normalise(sql), read="postgres")
    except sqlglot.errors.ParseError as exc:
        return (Problem("unparsed", "?", str(exc).splitlines()[0][:120]),)
    found: list[Problem] = []
    for block in tree.find_all(*BLOCKS):
        found += _block(block)
    return tuple(dict.fromkeys(found))


def _copy(sql: str) -> tuple[Problem, ...]:
    m = re.match(r"\s*COPY\s+(\w+)\s*\(([^)]*)\)", sql, re.I)
    if not m:
        return ()
    table, columns = m.group(1), {c.strip().strip('"') for c in m.group(2).split(",")}
    k = dist.TABLES.get(table)
    if isinstance(k, dist.Distributed) and k.column not in columns:
        return (Problem("unrouted", table, f"COPY without {k.column}"),)
    return ()


def _own_tables(block: exp.Expression) -> dict[str, str]:
    """alias -> table of the tables this block reads or writes itself (not its sub-queries')."""
    found: dict[str, str] = {}
    for table in block.find_all(exp.Table):
        if _block_of(table) is not block or not table.name:
            continue
        found[table.alias_or_name] = table.name
    return found


def _block_of(node: exp.Expression) -> exp.Expression | None:
    parent = node.parent
    while parent is not None and not isinstance(parent, BLOCKS):
        parent = parent.parent
    return parent


class _Classes:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.pinned: set[str] = set()

    def find(self, x: str) -> str:
        while self.parent.get(x, x) != x:
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb
            if ra in self.pinned:
                self.pinned.add(rb)

    def pin(self, a: str) -> None:
        self.pinned.add(self.find(a))

    def is_pinned(self, a: str) -> bool:
        return self.find(a) in self.pinned


def _conjuncts(condition: Any) -> list[Any]:
    if condition is None:
        return []
    if isinstance(condition, exp.And):
        return _conjuncts(condition.left) + _conjuncts(condition.right)
    if isinstance(condition, exp.Paren):
        return _conjuncts(condition.this)
    return [condition]


def _is_value(node: Any) -> bool:
    while isinstance(node, exp.Cast | exp.Paren):
        node = node.this
    return isinstance(node, exp.Placeholder | exp.Parameter | exp.Literal)


def _column_key(col: exp.Column, tables: dict[str, str], outer: dict[str, str]) -> str | None:
    """``alias.column`` of a column of this block or of an outer one (unqualified: the one table
    of those that has it)."""
    if col.table:
        return f"{col.table}.{col.name}" if col.table in tables or col.table in outer else None
    owners = list(tables) if len(tables) == 1 else [a for a, t in tables.items() if col.name in _columns(t)]
    return f"{owners[0]}.{col.name}" if len(owners) == 1 else None


def _classes(block: exp.Expression) -> _Classes:
    """The equality classes of a block, its outer blocks' included (a correlated sub-query is
    routed by ``inner.col = outer.col`` when the outer block pins ``outer.col``). Columns are
    named ``alias.column``: an alias reused by an inner block shares the outer one's classes."""
    parent = _block_of(block)
    classes = _classes(parent) if parent is not None else _Classes()
    tables, outer = _own_tables(block), _outer_tables(block)
    conditions: list[exp.Expression] = []
    where = block.args.get("where")
    if where is not None:
        conditions += _conjuncts(where.this)
    for join in block.args.get("joins") or ():
        conditions += _conjuncts(join.args.get("on"))
    for cond in conditions:
        if isinstance(cond, exp.EQ):
            left, right = cond.left, cond.right
            lk = _column_key(left, tables, outer) if isinstance(left, exp.Column) else None
            rk = _column_key(right, tables, outer) if isinstance(right, exp.Column) else None
            if lk and rk:
                classes.union(lk, rk)
            elif lk and _is_value(right):
                classes.pin(lk)
            elif rk and _is_value(left):
                classes.pin(rk)
        elif isinstance(cond, exp.In) and isinstance(cond.this, exp.Column):
            values = cond.expressions
            key = _column_key(cond.this, tables, outer)
            if key and values and all(_is_value(v) for v in values) and (len(values) == 1 or not _locks(block)):
                classes.pin(key)  # several values: Citus prunes to their shards; a lock over several is refused
    return classes


def _locks(block: exp.Expression) -> bool:
    """``SELECT ... FOR UPDATE/SHARE``: Citus locks rows on one shard only."""
    return bool(block.args.get("locks"))


def _block(block: exp.Expression) -> list[Problem]:
    tables = _own_tables(block)
    classes = _classes(block)
    inserted = _inserted_columns(block)
    found: list[Problem] = []
    mapped = {a: (t, dist.TABLES.get(t)) for a, t in tables.items()}
    routed_by: dict[str, str] = {}
    for alias, (table, k) in mapped.items():
        if not isinstance(k, dist.Distributed):
            continue
        key = f"{alias}.{k.column}"
        routed_by[alias] = key
        if isinstance(block, exp.Insert) and block.this is not None and _insert_target(block) == alias:
            if k.column not in inserted and not _generated(table, k.column):
                found.append(Problem("unrouted", table, f"INSERT without {k.column}"))
            continue
        if not classes.is_pinned(key):
            found.append(Problem("unrouted", table, f"no equality on {k.column}"))
        if isinstance(block, exp.Update) and _insert_target(block) == alias and k.column in _set_columns(block):
            found.append(Problem("moved", table, f"UPDATE sets {k.column}"))
    aliases = list(routed_by)
    for i, a in enumerate(aliases):
        for b in aliases[i + 1:]:
            ta, tb = mapped[a][0], mapped[b][0]
            if not dist.co_located(ta, tb):
                found.append(Problem("join", ta, f"joined with {tb}, not co-located"))
            elif classes.find(routed_by[a]) != classes.find(routed_by[b]):
                found.append(Problem("join", ta, f"joined with {tb} not on the distribution column"))
    if routed_by and _correlated_reference(block, tables):
        found.append(Problem("correlated", next(iter(mapped[a][0] for a in routed_by)),
                             "sub-query refers to a reference table of the outer query"))
    return found


def _generated(table: str, column: str) -> bool:
    """The column is the table's own integer primary key from a sequence: Citus evaluates the
    ``nextval`` default on the coordinator and routes the row by the value it got."""
    model = Base.metadata.tables.get(table)
    if model is None or column not in model.c:
        return False
    pk = list(model.primary_key.columns)
    return len(pk) == 1 and pk[0].name == column and pk[0].autoincrement in (True, "auto")


def _insert_target(block: exp.Expression) -> str | None:
    target = block.this
    if isinstance(target, exp.Schema):
        target = target.this
    return target.alias_or_name if isinstance(target, exp.Table) else None


def _inserted_columns(block: exp.Expression) -> set[str]:
    if not isinstance(block, exp.Insert) or not isinstance(block.this, exp.Schema):
        return set()
    return {c.name for c in block.this.expressions}


def _set_columns(block: exp.Expression) -> set[str]:
    """The columns an UPDATE sets."""
    return {e.this.name for e in block.expressions if isinstance(e, exp.EQ) and isinstance(e.this, exp.Column)}


def _outer_tables(block: exp.Expression) -> dict[str, str]:
    found: dict[str, str] = {}
    parent = _block_of(block)
    while parent is not None:
        for alias, table in _own_tables(parent).items():
            found.setdefault(alias, table)
        parent = _block_of(parent)
    return found


def _correlated_reference(block: exp.Expression, tables: dict[str, str]) -> bool:
    outer = _outer_tables(block)
    for col in block.find_all(exp.Column):
        if _block_of(col) is not block or not col.table or col.table in tables:
            continue
        if isinstance(dist.TABLES.get(outer.get(col.table, "")), dist.Reference):
            return True
    return False
