"""Health documents in mail: IHE XDM archives (IHE ITI TF-1 §16, TF-3 §4.1, §4.2.3) carrying
HL7 CDA R2 documents, as the ANS client referential (CI-SIS "MSSanté" clients) has software
send them. Pure: the standard library and defusedxml only; it never imports ``gateway``
nor a sibling package (docs/architecture.md).

- :mod:`healthdocs.model`: the values (documents found in a message), their JSON form;
- :mod:`healthdocs.safezip`: a zip read within limits (:class:`~healthdocs.safezip.ZipLimits`);
- :mod:`healthdocs.xmlsafe`: XML through defusedxml, DTDs and entities refused;
- :mod:`healthdocs.metadata`: ``METADATA.XML`` (ebRIM ``SubmitObjectsRequest``);
- :mod:`healthdocs.cda`: a CDA R2 document's header and body level;
- :mod:`healthdocs.xdm`: an attachment -> :class:`~healthdocs.model.Archive`;
- :mod:`healthdocs.decide`: for a patient mailbox: accept, or refuse with a reason code;
- :mod:`healthdocs.testing`: synthetic archives for tests and benchmarks.
"""
