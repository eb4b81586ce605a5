"""SASL mechanisms' client messages, parsed (pure, sans-IO): the one parser that ``smtp`` (AUTH,
RFC 4954) and ``imap`` (AUTHENTICATE, RFC 9051 §6.2.2) share, since the protocol packages import
no sibling. :mod:`saslwire.bearer`: OAUTHBEARER (RFC 7628) and XOAUTH2."""
