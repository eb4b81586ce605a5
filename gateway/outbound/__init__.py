"""The outbound side (SPEC §7): the persistent queue (``queue``, ``values``), the SMTP client
(``client``, ``mx``), DKIM signing of what leaves (``signing``), DSN and MDN builders
(``dsn``, ``mdn``), patient notifications and code mails (``notify``), one queue entry's
attempt (``process``) and the queue worker (``worker``: the only "worker" of the gateway;
SMTP's extra processes are ``delivery.smtp_processes``).

Layer: beside ``delivery``, ``web``, ``imap_adapter`` and ``operations``; below ``app``. May
import ``gateway.accounts``, ``gateway.mailstore``, ``gateway.store``, ``gateway.net``,
``gateway.settings``, ``gateway.metrics`` and the pure packages. Mail it hands back to local
users (DSNs, bounces) goes through a callback given by ``app``, not through ``delivery``.
"""
