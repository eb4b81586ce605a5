"""The IMAP4rev1 server protocol, sans-IO (DESIGN rules 1-3), read in layers:

* :mod:`imap.proto`: the wire: receiver (framing) → reader (tokens) → grammar → typed
  commands; the response encoder, errors that know their response, the reply catalogue;
* :mod:`imap.state`: THE state table (which command is valid in which state) and the
  CAPABILITY list of each state;
* :mod:`imap.session`: one connection's session (bytes in, bytes out) that runs the
  handlers of :mod:`imap.handlers` (one module per state / command group) over the
  storage contract of :mod:`imap.backend`; :mod:`imap.selected_view` keeps the
  selected mailbox as the client sees it;
* :mod:`imap.message`: a message's MIME structure, ENVELOPE and sections for FETCH;
* :mod:`imap.server`: the thin asyncio shell (sockets, TLS, timeouts);
* :mod:`imap.testing`: an in-memory backend and a transcript runner for tests.

This package imports no other package of the project (``gateway`` implements the backend).
"""
