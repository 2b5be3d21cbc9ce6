"""Decode page bytes to text the way browsers do: BOM, declared charset, in-document charset, guess.

Not w3lib: html_to_unicode reads a meta-declared UTF-16 as UTF-16-BE (browsers: UTF-8); charset-normalizer guesses.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

# Where a page's own declaration of its encoding may sit: an XML prolog or an HTML <meta>.
_DECLARED_CHARSET = re.compile(
    rb"""<\?xml[^>]{0,200}?encoding\s*=\s*["']?([\w.:-]+)|<meta[^>]{0,300}?charset\s*=\s*["']?\s*([\w.:-]+)""",
    re.IGNORECASE,
)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def codec_for(label: str | None) -> str | None:
    """Python's codec for a charset label, or None when the label is unknown or not a text encoding."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().lower()).name
        b"x".decode(name, "ignore")  # rejects bytes-to-bytes codecs ("zlib", "base64") and "undefined"
    except (LookupError, UnicodeError):
        return None
    # As browsers do (WHATWG Encoding): pages labelled latin-1 or ASCII are in practice windows-1252.
    return "cp1252" if name in ("iso8859-1", "ascii") else name


def _charset_in_document(data: bytes) -> str | None:
    match = _DECLARED_CHARSET.search(data[:4096])
    if match is None:
        return None
    codec = codec_for((match.group(1) or match.group(2)).decode("ascii"))
    # A page readable enough to find this declaration cannot be UTF-16; browsers read it as UTF-8.
    return "utf-8" if codec and codec.startswith("utf-16") else codec


def decode_html(data: bytes, declared: str | None = None) -> str:
    """Text of a page: BOM, then the declared charset, then the in-document one, then a guess; never raises."""
    for bom, bom_codec in _BOMS:
        if data.startswith(bom):
            return data.decode(bom_codec, errors="replace")
    codec = codec_for(declared) or _charset_in_document(data)
    if codec:
        return data.decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    guess = charset_normalizer.from_bytes(data).best()
    return data.decode(codec_for(guess.encoding if guess else None) or "utf-8", errors="replace")
