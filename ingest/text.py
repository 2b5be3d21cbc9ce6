"""Characters a reader never sees, in one list for every layer that handles page text.

Page text is untrusted. Zero-width characters split words so that a filter for "ignore all
previous instructions" misses them while the model still reads the words; bidi overrides and
isolates make the characters a reader sees differ in order from the ones stored, quoted and given
to the model; tag characters (U+E0000 block) spell out a whole hidden ASCII message that most
tokenizers still read. None of them carries meaning for answering or quoting, so extraction
removes them before text is stored, and the prompt removes them again from passages stored by an
older version. ``indexes`` may not import this module (it is below ``ingest``); it never needs to.
"""

from __future__ import annotations

import re

INVISIBLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),  # soft hyphen: "recur\u00adsion" reads as "recursion" but does not match it
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # arabic letter mark (bidi)
    (0x180E, 0x180E),  # mongolian vowel separator
    (0x200B, 0x200F),  # zero-width space, non-joiner, joiner; left-to-right and right-to-left marks
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x2064),  # word joiner and invisible operators
    (0x2066, 0x2069),  # bidi isolates
    (0x206A, 0x206F),  # deprecated format characters
    (0xFE00, 0xFE0F),  # variation selectors: can encode hidden bytes after any visible character
    (0xFEFF, 0xFEFF),  # zero-width no-break space (byte order mark)
    (0xFFF9, 0xFFFB),  # interlinear annotation controls
    (0x1D173, 0x1D17A),  # musical format controls
    (0xE0000, 0xE007F),  # tag characters: an invisible copy of ASCII
    (0xE0100, 0xE01EF),  # variation selectors supplement
)

INVISIBLE = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in INVISIBLE_RANGES) + "]")


def strip_invisible(text: str) -> str:
    """``text`` without any character of :data:`INVISIBLE_RANGES`."""
    return INVISIBLE.sub("", text)
