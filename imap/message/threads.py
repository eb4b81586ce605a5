"""THREAD algorithms of RFC 5256: ORDEREDSUBJECT (§3) and REFERENCES (§2.2, §3), pure.

Each message comes as a :class:`ThreadInput` (its number in the response, its sent date,
its base subject and whether the subject was a reply or forward, its Message-ID and the
message ids it refers to); the result is the ``thread-list`` text of the THREAD response.
Equal dates keep mailbox order (the input order).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass, field

_MSGID = re.compile(r"<([^<>\s]+)>")


@dataclass(frozen=True, slots=True)
class ThreadInput:
    number: int  # sequence number or UID, as the response gives it
    date: dt.datetime  # RFC 5256 "sent date" (Date header, else INTERNALDATE)
    subject: str  # base subject (RFC 5256 §2.1)
    reply: bool = False  # the subject was a reply or forward (§2.1 steps 2, 3, 6)
    message_id: str | None = None
    references: tuple[str, ...] = ()  # References, else the first id of In-Reply-To (§2.2 A)


def message_ids(value: str | None) -> list[str]:
    """The ``<id>`` message ids of a header value, in order."""
    return _MSGID.findall(value or "")


@dataclass(eq=False, slots=True)
class _Node:
    message: ThreadInput | None = None  # None: a dummy (RFC 5256 §2.2)
    order: int = 0  # input position: the tie-break after the date
    parent: _Node | None = None
    children: list[_Node] = field(default_factory=list)

    def key(self) -> tuple[dt.datetime, int]:
        """The date (a dummy: its first child's, children sorted first) and mailbox order."""
        if self.message is not None:
            return self.message.date, self.order
        return self.children[0].key() if self.children else (dt.datetime.min.replace(tzinfo=dt.UTC), 0)

    def first(self) -> ThreadInput | None:
        return self.message or (self.children[0].first() if self.children else None)

    def ancestor_of(self, other: _Node) -> bool:
        node: _Node | None = other
        while node is not None:
            if node is self:
                return True
            node = node.parent
        return False


def _link(child: _Node, parent: _Node | None) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    if parent is not None:
        parent.children.append(child)


def _sort(nodes: list[_Node]) -> None:
    """RFC 5256 §2.2 (D), (F): siblings by sent date, depth first (a dummy by its first child)."""
    for node in nodes:
        _sort(node.children)
    nodes.sort(key=_Node.key)


def _render(node: _Node) -> str:
    """RFC 5256 §4 thread-list contents: a chain of single children, then nested lists."""
    numbers: list[str] = []
    while node.message is not None and len(node.children) == 1:
        numbers.append(str(node.message.number))
        node = node.children[0]
    if node.message is not None:
        numbers.append(str(node.message.number))
    nested = "".join("(" + _render(child) + ")" for child in node.children)
    return " ".join(numbers) + (" " if numbers and nested else "") + nested


def _response(roots: list[_Node]) -> str:
    return "".join("(" + _render(root) + ")" for root in roots)


def ordered_subject(messages: list[ThreadInput]) -> str:
    """RFC 5256 §3 ORDEREDSUBJECT: one thread per base subject, its messages by sent date
    as children of the first; threads ordered by the date of their first message."""
    groups: dict[str, list[_Node]] = {}
    for order, message in enumerate(messages):
        groups.setdefault(message.subject, []).append(_Node(message, order))
    roots: list[_Node] = []
    for nodes in groups.values():
        nodes.sort(key=_Node.key)
        for child in nodes[1:]:
            _link(child, nodes[0])
        roots.append(nodes[0])
    roots.sort(key=_Node.key)
    return _response(roots)


def references(messages: list[ThreadInput]) -> str:
    """RFC 5256 §2.2 REFERENCES. A duplicate Message-ID counts as none (the message gets a
    unique id); a message's own References place it, replacing a parent guessed from another
    message's, and a link that would make a loop is not made (the message stays a root)."""
    by_id: dict[str, _Node] = {}
    nodes: list[_Node] = []
    for order, message in enumerate(messages):  # (A)
        node = by_id.get(message.message_id) if message.message_id else None
        if node is None or node.message is not None:
            node = _Node()
            if message.message_id and message.message_id not in by_id:
                by_id[message.message_id] = node
        node.message, node.order = message, order
        nodes.append(node)
        chain = [by_id.setdefault(ref, _Node()) for ref in message.references]
        for above, below in itertools.pairwise(chain):
            if below.parent is None and above is not below and not below.ancestor_of(above):
                _link(below, above)
        last = chain[-1] if chain else None
        if last is not None and (last is node or node.ancestor_of(last)):
            last = None  # a loop
        _link(node, last)
    roots = [n for n in {id(n): n for n in [*by_id.values(), *nodes]}.values() if n.parent is None]  # (B)
    roots = _prune(roots, at_root=True)  # (C)
    _sort(roots)  # (D)
    roots = _merge_subjects(roots)  # (E)
    _sort(roots)  # (F)
    return _response(roots)


def _prune(nodes: list[_Node], *, at_root: bool) -> list[_Node]:
    """RFC 5256 §2.2 (C): empty dummies go; a dummy's children take its place, except that a
    dummy at the root with more than one child stays."""
    out: list[_Node] = []
    for node in nodes:
        node.children = _prune(node.children, at_root=False)
        for child in node.children:
            child.parent = node
        if node.message is None and not node.children:
            continue
        if node.message is None and (not at_root or len(node.children) == 1):
            for child in node.children:
                child.parent = node.parent
            out += node.children
            continue
        out.append(node)
    return out


def _merge_subjects(roots: list[_Node]) -> list[_Node]:
    """RFC 5256 §2.2 (E): root threads with the same base subject are gathered."""
    table: dict[str, _Node] = {}
    for root in roots:
        first = root.first()
        if first is None or not first.subject:
            continue
        old = table.get(first.subject)
        old_first = old.first() if old is not None else None
        if old is None or (root.message is None and old.message is not None) or \
                (old_first is not None and old_first.reply and not first.reply):
            table[first.subject] = root
    out: list[_Node] = []
    for root in roots:
        first = root.first()
        entry = table.get(first.subject) if first is not None and first.subject else None
        if entry is None or entry is root:
            out.append(root)
            continue
        if entry.message is None and root.message is None:
            for child in list(root.children):
                _link(child, entry)
        elif entry.message is None:
            _link(root, entry)
        elif first is not None and first.reply and not (entry.first() or first).reply:
            _link(root, entry)
        else:  # a new dummy holds both, where the table's thread was
            dummy = _Node()
            position = out.index(entry) if entry in out else None
            _link(entry, dummy)
            _link(root, dummy)
            table[first.subject if first is not None else ""] = dummy
            if position is not None:
                out[position] = dummy
            else:
                out.append(dummy)
                roots[roots.index(entry)] = dummy
    return out
