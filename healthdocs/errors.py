"""The format's one error and its reason codes (DESIGN: errors that know their reason)."""

from __future__ import annotations

# Reason codes for an archive that is not read (it is then delivered as an ordinary attachment).
NOT_ZIP = "health.not_zip"
TOO_MANY_ENTRIES = "health.too_many_entries"
ENTRY_TOO_LARGE = "health.entry_too_large"
TOTAL_TOO_LARGE = "health.total_too_large"
RATIO = "health.compression_ratio"
PATH = "health.unsafe_path"
NESTED = "health.nested_archive"
ENCRYPTED = "health.encrypted_entry"
DUPLICATE = "health.duplicate_entry"
COMPRESSION = "health.unsupported_compression"
CORRUPT = "health.corrupt"
XML_FORBIDDEN = "health.xml_forbidden"  # a DTD, an entity, an external reference
XML_INVALID = "health.xml_invalid"
NO_METADATA = "health.no_metadata"
MISSING_DOCUMENT = "health.missing_document"


class FormatError(Exception):
    """An archive or XML that is not read, with its reason code (one of the above)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
