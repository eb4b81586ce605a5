"""The web: the patient inbox (``patient``, French) and the admin console and JSON API
(``admin``), one Starlette application per process (``app``), served by uvicorn in the
gateway's event loop behind the listeners' budgets (``server``, ``gated``).

Layer: beside ``delivery``, ``imap_adapter``, ``outbound`` and ``operations``; below ``app``.
May import ``gateway.operations`` (every admin action), ``gateway.delivery`` (the patient's
replies and read receipts go through the process's delivery runtime, handed in by ``app``),
``gateway.outbound`` (read receipts are built by ``outbound.mdn``), ``gateway.mailstore``,
``gateway.accounts``, ``gateway.store``, ``gateway.net``, ``gateway.settings``,
``gateway.metrics`` and the pure packages. The web should call the concepts, not the ORM:
the direct queries still in it are listed in docs/architecture.md.
"""
