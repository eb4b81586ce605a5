"""The mail store: the one path for message bytes. Sealing a message for a mailbox and
inserting it (``sealed``, ``messages``), large messages in pieces (``chunks``), opening a
stored message, folders with their UIDs and MODSEQ (``folders``), folder and message
operations with IMAP semantics that the IMAP adapter and the web inbox share
(``folder_ops``, ``message_ops``), the ENVELOPE/BODYSTRUCTURE summary (``summaries``),
conversations between a professional and a patient (``conversations``) and the daily
adoption counts recorded with each delivery (``adoption``).

Layer: above ``store``, beside ``accounts``; below ``delivery``, ``imap_adapter``, ``web``,
``outbound``, ``operations`` and ``app``. May import ``gateway.store``,
``gateway.settings``, ``gateway.metrics`` and the pure packages; never ``accounts``.
"""
