"""A minimal, valid one-page PDF for an invoice, written by hand (no PDF library needed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Invoice


def _escape(text: str) -> str:
    # PDF literal strings: backslash and parentheses are special; keep to Latin-1
    text = text.encode("latin-1", "replace").decode("latin-1")
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def text_pdf(lines: list[str]) -> bytes:
    """A one-page A4 PDF showing ``lines`` in Helvetica, with a correct cross-reference table."""
    content_lines = ["BT", "/F1 12 Tf", "14 TL", "72 770 Td"]
    for line in lines:
        content_lines.append(f"({_escape(line)}) Tj T*")
    content_lines.append("ET")
    stream = "\n".join(content_lines).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref_at,
    )
    return bytes(out)


def invoice_pdf(invoice: Invoice) -> bytes:
    """The PDF of ``invoice``; the same invoice always gives the same bytes."""
    return text_pdf(
        [
            invoice.company.name,
            "",
            f"Invoice {invoice.number}",
            f"Date: {invoice.issued_on.isoformat()}",
            f"Customer: {invoice.customer.name}",
            "",
            invoice.description,
            f"Amount due: {invoice.amount:.2f} EUR",
        ]
    )


def invoice_filename(invoice: Invoice) -> str:
    """The attachment's file name."""
    return f"{invoice.number}.pdf"
