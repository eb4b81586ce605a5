"""Admin operations shared by the command line and the admin web console / JSON API.

Each operation is written once, as a plain synchronous function over a SQLAlchemy
session (the caller opens the transaction: ``db.write()`` or ``db.read()``), and is
called by ``gateway/cli_*.py`` and by ``gateway/web/admin/`` alike. An operation checks
its input, changes the store, and writes its audit entry (actor ``admin:<name>``, or
``admin:cli:<user>`` from the command line) in that same transaction, so a refusal
changes nothing. Refusals are :class:`gateway.operations.common.OpError`: an HTTP
status, a stable code, a French message for the console and an English one for the
command line.

Layering: this package may import ``gateway.store``, the lifecycle helpers built on it
(``gateway.accounts.purge``) and the pure packages (``routing``, ``crypto``); never
``gateway.web`` nor the command line (``tests/test_layout.py`` checks it).
"""
