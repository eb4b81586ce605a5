"""XML through defusedxml (DESIGN: no DTD, no entity, no external reference, ever)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, cast
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from healthdocs import errors
from healthdocs.errors import FormatError


class Source(Protocol):
    """Anything with ``read(n)`` (a zip entry's counted stream)."""

    def read(self, size: int = -1) -> bytes: ...


ERRORS = (DefusedXmlException, ParseError, ValueError, UnicodeError, RecursionError)


def refusal(exc: BaseException) -> FormatError:
    """The format's error for what :data:`ERRORS` caught."""
    return FormatError(errors.XML_FORBIDDEN if isinstance(exc, DefusedXmlException) else errors.XML_INVALID)


def iterparse(source: Source) -> Iterator[tuple[str, Element]]:
    """Start and end events from ``source`` (``read(n)``), read as they are consumed; the same
    refusals as :func:`parse` (raised as the library's errors: catch :data:`ERRORS`)."""
    return cast(Iterator[tuple[str, Element]],
                DET.iterparse(source, events=("start", "end"), forbid_dtd=True, forbid_entities=True,
                              forbid_external=True))


def parse(data: bytes) -> Element:
    """The root element; a DTD (even an internal one), an entity declaration or an external
    reference is :data:`~healthdocs.errors.XML_FORBIDDEN`, anything malformed
    :data:`~healthdocs.errors.XML_INVALID`."""
    try:
        root: Element = DET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise FormatError(errors.XML_FORBIDDEN) from None
    except (ParseError, ValueError, UnicodeError, RecursionError):
        raise FormatError(errors.XML_INVALID) from None
    return root
