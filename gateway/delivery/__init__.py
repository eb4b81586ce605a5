"""Delivery: how a message gets in. The pipeline (``pipeline``: headers parsed once,
conversation bookkeeping, one routing decision per recipient, a sealed copy per mailbox, one
transaction with the queue rows and the audit), the facts it decides on (``directory``,
``headers``), the gateway's implementation of the SMTP core's backend Protocols
(``smtp_backend``: policy verdicts, delivery, authentication, memory budget), the SMTP
listeners that run :mod:`smtp.server` over it (``smtp_listener``) and the extra SMTP
processes that share their sockets (``smtp_processes``), patient replies from the web
inbox (``replies``), mail the gateway writes itself (``internal``), the health-document
check for patient recipients (``documents``), and
:class:`~gateway.delivery.runtime.MailRuntime`, what one process's SMTP sessions and web
inbox share.

Layer: beside ``imap_adapter``, ``web`` and ``operations``; below ``app``. May import
``gateway.outbound`` (the pipeline queues remote recipients and notifications),
``gateway.mailstore``, ``gateway.accounts``, ``gateway.store``, ``gateway.net``,
``gateway.settings``, ``gateway.metrics`` and the pure packages (``smtp`` for the protocol:
no other SMTP server library).
"""
