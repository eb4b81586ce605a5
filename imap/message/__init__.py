"""What FETCH reads from a stored message (RFC 3501 §6.4.5, §7.4.2; RFC 2045/2046, RFC 5322).

:mod:`~imap.message.mime` splits raw bytes into MIME parts with exact offsets and computes
ENVELOPE, BODYSTRUCTURE and ``BODY[section]``; :mod:`~imap.message.addresses` reads address
lists for the ENVELOPE. The values are those of :mod:`imap.proto.structure`.
"""
