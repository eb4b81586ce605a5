"""Admin operations shared by the command line and the admin web console / JSON API.

Each operation is written once, as a plain synchronous function over a SQLAlchemy
session (the caller opens the transaction: ``db.write()`` or ``db.read()``), and is
called by ``gateway/app/cli/`` and by ``gateway/web/admin/`` alike. An operation checks
its input, changes the store, and writes its audit entry (actor ``admin:<name>``, or
``admin:cli:<user>`` from the command line) in that same transaction, so a refusal
changes nothing. Refusals are :class:`gateway.operations.common.OpError`: an HTTP
status, a stable code, a French message for the console and an English one for the
command line.

Modules by concept: ``trust`` (the trust list) with ``trust_import`` (the liste blanche),
``hosted`` (hosted domains and their DKIM keys),
``pros``, ``patients`` and ``people`` (lookups and creation from the console), ``admins``,
``queue``, ``audit_trail`` (search, export, chain verification), ``mediation`` and
``recovery`` (a new activation code: the CLI, the mediator's console and the patient's own
"Mot de passe oublié" page).

Layer: beside ``web``, ``delivery``, ``imap_adapter`` and ``outbound``; below ``app``. May
import ``gateway.outbound`` (queue operations; a recovery code is mailed through the queue),
``gateway.accounts``, ``gateway.mailstore``, ``gateway.store``, ``gateway.settings`` and the
pure packages; never ``gateway.web`` nor the command line (``tests/test_layout.py``).
"""
