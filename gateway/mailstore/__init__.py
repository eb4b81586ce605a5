"""The mail store: the one path for message bytes. Sealing a message for a mailbox and
opening it again with the one ownership rule (``sealed``: the only module that does),
inserting it (``messages``), large messages in pieces (``chunks``), the one MIME parse of a
message (``parsing``) and the summary made from it at delivery and sealed with it
(``summaries``: IMAP ENVELOPE/BODYSTRUCTURE and what the web inbox lists), folders with
their UIDs and MODSEQ (``folders``), folder and message operations with IMAP semantics
(``folder_ops``, ``message_ops``), a mailbox read as a list for the patient web inbox
(``inbox``), conversations between a professional and a patient (``conversations``) and
the daily adoption counts recorded with each delivery (``adoption``).

Layer: above ``store``, beside ``accounts``; below ``delivery``, ``imap_adapter``, ``web``,
``outbound``, ``operations`` and ``app``. May import ``gateway.store``,
``gateway.settings``, ``gateway.metrics`` and the pure packages; never ``accounts``.
"""
