"""Listener infrastructure shared by every network-facing package: the accept loop behind
per-listener and per-address caps (``accept``), one process's connection and memory budgets
(``budgets``, ``bodies``), the PROXY protocol (``proxy``), the TLS contexts (``tls``) and
:class:`~gateway.net.running.Running`, what a started listener hands back.

Layer: below ``delivery``, ``imap_adapter``, ``web``, ``outbound`` and ``app``, beside
``store``. May import ``gateway.settings``, ``gateway.metrics`` and the pure packages
(``smtp``, ``imap``, ``routing``, ``crypto``); nothing else of ``gateway``.
"""
