"""The IMAP adapter: ``imap``'s backend Protocol implemented over the mail store
(``backend``), the per-process cache of folder listings (``listing``), the group-committed
access audit of SELECT/EXAMINE (``audit``), and the IMAP and IMAPS listeners (``listener``),
which take the backend and the budgets they serve with as arguments.

Layer: beside ``delivery``, ``web``, ``outbound`` and ``operations``; below ``app``. May
import ``gateway.mailstore``, ``gateway.accounts``, ``gateway.store``, ``gateway.net``,
``gateway.settings``, ``gateway.metrics`` and the pure packages (``imap`` first of all).
"""
