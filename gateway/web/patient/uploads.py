"""Reply attachments: PDF, JPEG, PNG, TIFF, TXT, RTF only, recognised by extension *and*
content (magic bytes), never by the declared type; per-file, count and total limits."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.datastructures import UploadFile

from gateway.delivery.replies import Attachment

KINDS: dict[str, tuple[str, tuple[bytes, ...]]] = {
    "pdf": ("application/pdf", (b"%PDF-",)),
    "jpg": ("image/jpeg", (b"\xff\xd8\xff",)),
    "jpeg": ("image/jpeg", (b"\xff\xd8\xff",)),
    "png": ("image/png", (b"\x89PNG\r\n\x1a\n",)),
    "tif": ("image/tiff", (b"II*\x00", b"MM\x00*")),
    "tiff": ("image/tiff", (b"II*\x00", b"MM\x00*")),
    "txt": ("text/plain", ()),
    "rtf": ("application/rtf", (b"{\\rtf",)),
}
ACCEPT = ",".join(f".{ext}" for ext in KINDS)


class UploadRefused(ValueError):
    """The French text says what is wrong, for the patient."""


@dataclass(frozen=True)
class UploadLimits:
    per_file: int
    total: int
    count: int


def safe_filename(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    cleaned = "".join(c for c in base if c.isprintable() and c not in '<>:"|?*;').strip(" .")
    return cleaned[:120] or "piece-jointe"


def kind_of(filename: str, data: bytes) -> str | None:
    """The content type if the extension is allowed and the content matches it."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    known = KINDS.get(ext)
    if known is None:
        return None
    content_type, magics = known
    if content_type == "text/plain":
        if b"\x00" in data:
            return None
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return content_type
    return content_type if any(data.startswith(m) for m in magics) else None


async def read_attachments(files: Sequence[UploadFile], limits: UploadLimits) -> list[Attachment]:
    chosen = [f for f in files if f.filename]
    if len(chosen) > limits.count:
        raise UploadRefused(f"Vous pouvez joindre au plus {limits.count} fichiers.")
    out: list[Attachment] = []
    total = 0
    for upload in chosen:
        name = safe_filename(upload.filename or "")
        data = await upload.read(limits.per_file + 1)
        if len(data) > limits.per_file:
            raise UploadRefused(f"« {name} » dépasse la taille maximale par fichier.")
        if not data:
            raise UploadRefused(f"« {name} » est vide.")
        total += len(data)
        if total > limits.total:
            raise UploadRefused("L'ensemble des pièces jointes dépasse la taille totale autorisée.")
        content_type = kind_of(name, data)
        if content_type is None:
            raise UploadRefused(f"« {name} » n'est pas un fichier accepté (PDF, JPEG, PNG, TIFF, TXT ou RTF), "
                                "ou son contenu ne correspond pas à son extension.")
        out.append(Attachment(name, content_type, data))
    return out
