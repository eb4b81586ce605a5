"""Pure cryptography for the gateway: envelope encryption, master keyring, keyed indexes, DKIM helpers.

No file or socket I/O here; randomness and DNS are parameters.
"""

from crypto.blind_index import DIGEST_BYTES, BlindDigest, IndexKeyring, blind_digest
from crypto.dkim import (
    DkimResult,
    dns_txt_record,
    generate_dkim_key,
    pinned_dnsfunc,
    sign_message,
    verify_message,
    verify_signatures,
)
from crypto.dkim_keys import PublicKey, PublicKeyError, parse_public_key, zone_record
from crypto.envelope import (
    BLOB_VERSION,
    KEY_BYTES,
    NONCE_BYTES,
    DecryptionError,
    aad,
    new_data_key,
    open_sealed,
    seal,
    sealed_size,
)
from crypto.keyring import KeyfileError, MasterKeyring, WrappedKey, format_keyfile, parse_keyfile

__all__ = [
    "BLOB_VERSION",
    "DIGEST_BYTES",
    "KEY_BYTES",
    "NONCE_BYTES",
    "BlindDigest",
    "DecryptionError",
    "DkimResult",
    "IndexKeyring",
    "KeyfileError",
    "MasterKeyring",
    "PublicKey",
    "PublicKeyError",
    "WrappedKey",
    "aad",
    "blind_digest",
    "dns_txt_record",
    "format_keyfile",
    "generate_dkim_key",
    "new_data_key",
    "open_sealed",
    "parse_keyfile",
    "parse_public_key",
    "pinned_dnsfunc",
    "seal",
    "sealed_size",
    "sign_message",
    "verify_message",
    "verify_signatures",
    "zone_record",
]
