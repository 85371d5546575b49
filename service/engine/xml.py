"""The one way the service reads uploaded XML: no DTD, no entities, no network, a size cap."""
from __future__ import annotations

from lxml import etree

MAX_XML_BYTES = 2 * 1024 * 1024


class XmlRejected(ValueError):
    """An upload that is not XML we will read."""


_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
    huge_tree=False, remove_comments=False, remove_pis=True,
)


def parse_xml(content: bytes, filename: str) -> etree._Element:
    """Parse ``content`` safely; raise :class:`XmlRejected` saying why it was refused."""
    if len(content) > MAX_XML_BYTES:
        raise XmlRejected(f"{filename} is {len(content):,} bytes; the limit is {MAX_XML_BYTES:,}")
    head = content[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in content.lower():
        raise XmlRejected(f"{filename} declares a DOCTYPE or entities, which uploads may not")
    try:
        root = etree.fromstring(content, parser=_PARSER)
    except etree.XMLSyntaxError as error:
        raise XmlRejected(f"{filename} is not well-formed XML: {error.msg} (line {error.lineno})") from None
    if root.getroottree().docinfo.doctype:
        raise XmlRejected(f"{filename} declares a DOCTYPE, which uploads may not")
    return root
