"""XML through defusedxml (DESIGN: no DTD, no entity, no external reference, ever)."""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from healthdocs import errors
from healthdocs.errors import FormatError


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
