"""Database infrastructure only: the engine and its transactions (``db``, ``opening``,
``raw`` statements on the driver's cursor), the models (``models``), the schema migrations
(``migrate``, ``migrations/``), the hash-chained audit trail (``audit``), group commit
(``group_commit``), change notifications (``changes``), mailboxes' data keys and the master
key file with its operations (``keys``, ``keyfile``, ``keyops``), SQLite backups
(``backup``), the gauges read at scrape time (``gauges``) and :class:`~gateway.store.services.Services`,
what one process shares.

Layer: below ``mailstore`` and ``accounts``, beside ``net``. May import ``gateway.settings``,
``gateway.metrics`` and the pure packages (``crypto`` above all); nothing else of ``gateway``.
"""
