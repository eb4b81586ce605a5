"""The SMTP protocol (RFC 5321 and the extensions we offer), shaped like ``imap/``; pure but
for :mod:`smtp.server`. It imports no other package of ours (``gateway`` implements its
Protocols; ``tests/test_layout.py`` checks the direction).

Reading order, from bytes to decisions:

* :mod:`smtp.reader`: lines and typed commands (:mod:`smtp.commands`), MAIL/RCPT
  parameters through :mod:`smtp.params`; :mod:`smtp.dataparse` reads DATA, smuggling-safe;
* :mod:`smtp.state`: THE table of verbs × phases, with the TLS/AUTH flags;
  :mod:`smtp.policy` gives those flags for a listener (AUTH never before TLS, SPEC §6);
* :mod:`smtp.session`: the sans-IO session (``receive_data`` -> :mod:`smtp.output`: replies and events),
  :mod:`smtp.handlers` the commands, :mod:`smtp.sasl` the AUTH exchange,
  :mod:`smtp.extensions` the EHLO keywords;
* :mod:`smtp.backend`: what the host provides (authenticator, policy verdicts, delivery,
  memory budget) and the session facts it is given;
* :mod:`smtp.replies`: every wire text; :mod:`smtp.throttle`: connection counting units;
* :mod:`smtp.server` and :mod:`smtp.connection`: the asyncio shell (sockets, TLS, deadlines);
* :mod:`smtp.testing`: an in-memory backend and a transcript runner.
"""
