"""Generate the synthetic MSSanté trust list fixture ``listeblanche-3000.xml`` (no real domain).

    .venv/bin/python tests/admin/data/make_listeblanche.py

Deterministic: the same file every time. 3,000 ``Domaine`` entries on ``.example`` and
``.test``, every tenth one a Unicode name (``hôpital-N.example``, stored as its IDNA A-label).
"""

from __future__ import annotations

import sys
from pathlib import Path
from xml.sax.saxutils import escape

NS = "https://listeblanche.mssante.fr/schema"
COUNT = 3000
HERE = Path(__file__).resolve().parent
OUT = HERE / "listeblanche-3000.xml"


def domain_name(i: int) -> str:
    if i % 10 == 0:
        return f"hôpital-{i}.example"
    return f"ets-{i}.{'example' if i % 2 else 'test'}"


def entry(i: int) -> str:
    name = domain_name(i)
    return (
        "  <Domaine>\n"
        f"    <Nom>{escape(name)}</Nom>\n"
        f"    <Description>{escape(f'Établissement de santé n°{i}')}</Description>\n"
        f"    <DNCertificatOperateur>CN=mx.operateur-{i % 40}.test,O=Opérateur {i % 40},C=FR</DNCertificatOperateur>\n"
        f"    <ResponsableContact>responsable@operateur-{i % 40}.test</ResponsableContact>\n"
        f"    <SupportContact>support@operateur-{i % 40}.test</SupportContact>\n"
        f"    <DateMAJ>2024-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00</DateMAJ>\n"
        "  </Domaine>\n"
    )


def document(count: int = COUNT) -> str:
    body = "".join(entry(i) for i in range(1, count + 1))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ListeBlanche xmlns="{NS}" '
            f'DateDeGeneration="2024-06-01T00:00:00">\n{body}</ListeBlanche>\n')


if __name__ == "__main__":
    OUT.write_text(document(), encoding="utf-8")
    sys.stdout.write(f"wrote {OUT} ({OUT.stat().st_size} bytes)\n")
