"""The IMAP wire protocol, without I/O (RFC 3501 §4, §7, §9 and extensions).

Client bytes go through :mod:`~imap.proto.receiver` (framing: lines and literals, limits
checked before any literal octet is buffered), then :mod:`~imap.proto.grammar` (with
:mod:`~imap.proto.grammar_select` and :mod:`~imap.proto.grammar_search`), which reads
tokens with the cursor of :mod:`~imap.proto.reader` and returns the typed commands of
:mod:`~imap.proto.commands` (values in :mod:`~imap.proto.command_types`). Server output is
written by :mod:`~imap.proto.encoder`; every status response text comes from the catalogue
:mod:`~imap.proto.replies`; :mod:`~imap.proto.errors` are exceptions that know their
response. :mod:`~imap.proto.seqset`, :mod:`~imap.proto.dates`, :mod:`~imap.proto.mutf7`
and :mod:`~imap.proto.structure` are the data formats they share; :mod:`~imap.proto.flags` holds
the system flags, the one definition the whole product reads.
"""
