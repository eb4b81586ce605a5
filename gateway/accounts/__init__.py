"""Accounts: who may log in and the life of every account. Authentication of professionals
(passwords, certificates; ``auth``) behind the login throttles (``throttle``); hosted and
trusted domains and professional accounts (``pros``) with their DKIM signing keys
(``signing_keys``); administrators (``admins``) and mediators (``mediators``); patient
spaces one by one (``patients``) or by the million from a roster (``roster``,
``provisioning``, ``bulk``); the patient web inbox's sessions (``web_sessions``); purging a
space (``purge``) and the periodic lifecycle jobs (``jobs``).

Layer: above ``store``, beside ``mailstore``; below ``delivery``, ``imap_adapter``, ``web``,
``outbound``, ``operations`` and ``app``. May import ``gateway.store``, ``gateway.mailstore``
(creating an account creates its mailbox folders; purging and the orphan-chunk job delete
message rows), ``gateway.settings``, ``gateway.metrics`` and the pure packages.
"""
