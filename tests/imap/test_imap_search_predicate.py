"""SEARCH's compiled test (:func:`imap.handlers.search.predicate`) answers as :func:`matches`
does, key by key, and keeps each summary's decoded header text for the next SEARCH."""

from __future__ import annotations

import datetime as dt

from gateway.mailstore.summaries import compute
from imap.backend import MessageMeta
from imap.handlers.search import _Candidate, matches, predicate
from imap.proto import command_types as t

MESSAGES = [
    b"From: Dr Who <who@clinic.test>\r\nTo: A <a@x.test>, b@y.test\r\nSubject: Lab results\r\n\r\nbody\r\n",
    b"From: =?utf-8?q?Ren=C3=A9e?= <renee@clinic.test>\r\nSubject: =?utf-8?q?R=C3=A9sultat?=\r\n\r\nx\r\n",
    b"From: nobody@x.test\r\nCc: Team <team@clinic.test>\r\n\r\nno subject\r\n",
]

KEYS: list[t.SearchKey] = [
    t.SearchHeader("SUBJECT", "results"), t.SearchHeader("SUBJECT", "RÉSULTAT"), t.SearchHeader("subject", ""),
    t.SearchHeader("FROM", "renée"), t.SearchHeader("FROM", "clinic.test"), t.SearchHeader("TO", "b@y"),
    t.SearchHeader("CC", "team"), t.SearchHeader("BCC", ""), t.SearchHeader("X-Other", ""),
    t.SearchNot(t.SearchHeader("SUBJECT", "lab")),
    t.SearchOr(t.SearchHeader("CC", "team"), t.SearchHeader("SUBJECT", "lab")),
    t.SearchAnd((t.SearchHeader("FROM", "clinic"), t.SearchFlag("\\Seen", present=False))),
    t.SearchAnd((t.SearchHeader("FROM", "clinic"), t.SearchFlag("\\Seen"))),
]


def _candidates(with_summary: bool) -> list[_Candidate]:
    when = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    return [_Candidate(i + 1, MessageMeta(i + 1, frozenset(), when, len(raw), 1), raw=raw,
                       summary=compute(raw).imap if with_summary else None)
            for i, raw in enumerate(MESSAGES)]


def test_predicate_answers_as_matches_with_and_without_summaries() -> None:
    for with_summary in (True, False):
        for key in KEYS:
            expected = [matches(key, m, exists=3, max_uid=3) for m in _candidates(with_summary)]
            test = predicate(key, exists=3, max_uid=3)
            assert [test(m) for m in _candidates(with_summary)] == expected, (key, with_summary)
    hits = [predicate(t.SearchHeader("FROM", "renée"), exists=3, max_uid=3)(m) for m in _candidates(True)]
    assert hits == [False, True, False]


def test_decoded_header_text_is_kept_with_the_summary() -> None:
    m = _candidates(True)[1]
    assert m.summary is not None and not m.summary.searchable
    assert predicate(t.SearchHeader("SUBJECT", "résultat"), exists=3, max_uid=3)(m)
    assert m.summary.searchable == {"SUBJECT": ("résultat",)}
    m.summary.searchable["SUBJECT"] = ("kept",)  # the next SEARCH reads what was kept
    assert predicate(t.SearchHeader("SUBJECT", "kept"), exists=3, max_uid=3)(m)
