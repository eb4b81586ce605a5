"""The gateway: implements the Protocols of the pure packages (``smtp``, ``imap``, ``routing``,
``crypto``) and wires them into one service, cut by concept (docs/architecture.md).

Layers, each importing only those below it (``tests/test_layout.py`` checks it, with the
few same-layer edges it lists):

- ``app``: the composition root (command line, configuration, the serving process);
- ``web``, ``delivery``, ``imap_adapter``, ``outbound``, ``operations``: what the gateway does;
- ``mailstore``, ``accounts``: the message bytes and the accounts;
- ``store``, ``net``: database and network infrastructure;
- ``settings``, ``metrics``: read and counted by every layer; they import nothing of ``gateway``.

``testing`` is the test kit, above everything. This package itself imports nothing.
"""
