"""LIST-EXTENDED (RFC 5258) over :mod:`imap.testing`: selection and return options,
\\NonExistent subscriptions, RECURSIVEMATCH with CHILDINFO (imaptest's listext test)."""

from __future__ import annotations

import pytest

from imap.testing import Transcript

LOGIN = """
    S: * OK ...
    C: a LOGIN alice pw
    S: a OK ...
"""
SETUP = "".join(f"C: c{i} CREATE {name}\nS: c{i} OK [MAILBOXID (...)] CREATE completed\n" for i, name in enumerate(
    ["m/t1", "m/t2/t1", "m/t3", "m/t6", "m/t7/t7", "m/t8/t8", "m/t8/t9"])) + "".join(
    f"C: s{i} SUBSCRIBE {name}\nS: s{i} OK SUBSCRIBE completed\n" for i, name in enumerate(
        ["m/t1", "m/t2/t1", "m/t6", "m/t7/t7", "m/t8/t8", "m/t8/t9"])) + """
    C: d DELETE m/t6
    S: d OK DELETE completed
"""


async def test_list_extended_selection_and_return_options() -> None:
    await Transcript().run(LOGIN + SETUP + r"""
        C: e LIST (SUBSCRIBED) "" m/*
        S: * LIST (\HasNoChildren \Subscribed) "/" m/t1
        S: * LIST (\HasNoChildren \Subscribed) "/" m/t2/t1
        S: * LIST (\Subscribed \NonExistent) "/" m/t6
        S: * LIST (\HasNoChildren \Subscribed) "/" m/t7/t7
        S: * LIST (\HasNoChildren \Subscribed) "/" m/t8/t8
        S: * LIST (\HasNoChildren \Subscribed) "/" m/t8/t9
        S: e OK LIST completed
        C: f LIST (SUBSCRIBED RECURSIVEMATCH) "" m/t2% RETURN (CHILDREN)
        S: * LIST (\HasChildren) "/" m/t2 ("CHILDINFO" ("SUBSCRIBED"))
        S: f OK LIST completed
        C: g LIST (SUBSCRIBED RECURSIVEMATCH) "" m*t8
        S: * LIST (\HasChildren) "/" m/t8 ("CHILDINFO" ("SUBSCRIBED"))
        S: * LIST (\HasNoChildren \Subscribed) "/" m/t8/t8
        S: g OK LIST completed
        C: h LIST (SUBSCRIBED RECURSIVEMATCH) "" (m/t2 m/t2/t1)
        S: * LIST (\HasNoChildren \Subscribed) "/" m/t2/t1
        S: h OK LIST completed
        C: i LIST (REMOTE) "" m/%
        S: * LIST (\HasNoChildren) "/" m/t1
        S: * LIST (\HasChildren) "/" m/t2
        S: * LIST (\HasNoChildren) "/" m/t3
        S: * LIST (\HasChildren) "/" m/t7
        S: * LIST (\HasChildren) "/" m/t8
        S: i OK LIST completed
        C: j LIST "" m/t% RETURN (SUBSCRIBED CHILDREN)
        S: * LIST (\HasNoChildren \Subscribed) "/" m/t1
        S: * LIST (\HasChildren) "/" m/t2
        S: * LIST (\HasNoChildren) "/" m/t3
        S: * LIST (\HasChildren) "/" m/t7
        S: * LIST (\HasChildren) "/" m/t8
        S: j OK LIST completed
    """)


@pytest.mark.parametrize("command", [
    'LIST (IMAPTEST) "" ""', 'LIST (RECURSIVEMATCH) "" ""', 'LIST (RECURSIVEMATCH REMOTE) "" ""',
    'LIST "" "" RETURN (IMAPTEST)',
])
async def test_list_extended_refuses_unknown_or_lone_options(command: str) -> None:
    # RFC 5258 §3: an unknown option, or RECURSIVEMATCH with no other selection option than REMOTE.
    await Transcript().run(LOGIN + f"C: b {command}\nS: b BAD ...")
