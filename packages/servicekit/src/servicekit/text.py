"""The one text policy of every service: what free text a field may hold.

Every free-text field (a name, a description, an e-mail address, a URL, a provider's
account id) goes through :func:`clean_text`, which either returns the stored form or
raises ``InvalidArgument`` naming the field and the first offending code point, e.g.
``name: must not contain U+001B (ESC), a control character``. The rules, in order:

1. Text longer than four times the field's limit is refused unread (a bound on the
   work one request can cause; normalization never shrinks text that much).
2. In a multi-line field CR LF becomes LF.
3. White space (Unicode's White_Space: spaces, tabs, line breaks) is removed from both
   ends.
4. Each remaining code point must be one a person can see or type as part of text:
   refused are control characters (category Cc: C0, DEL, C1; a multi-line field allows
   LF and TAB), line and paragraph separators (U+2028, U+2029: use LF), format
   characters (Cf: the bidirectional controls U+061C, U+200E, U+200F, U+202A-U+202E,
   U+2066-U+2069 that reorder what a reader sees, zero-width spaces U+200B, U+2060,
   U+FEFF, the soft hyphen, tag characters...), lone surrogates (Cs), private-use
   characters (Co), noncharacters and code points unassigned in the server's Unicode
   version (Cn: what they are cannot be known). The exception: ZERO WIDTH NON-JOINER
   and ZERO WIDTH JOINER (U+200C, U+200D), which Persian and Indic spelling and emoji
   sequences (a family, a flag) need, are allowed between two visible characters.
5. The text is normalized to NFC (canonical composition: "e" + U+0301 is stored as
   "é"); compatibility forms (full-width letters, ligatures) are kept as typed.
6. Empty text is refused where the field is required; text that is not empty must hold
   at least one visible character (a letter, digit, punctuation or symbol other than
   the blank ones such as U+3164 HANGUL FILLER or U+2800 BRAILLE PATTERN BLANK).
7. The length, in code points after normalization, must be within the field's limit.

Data that comes from a third party (an OAuth provider's display name) rather than from
the caller goes through :func:`sanitize_text` instead: the same rules, but what would
be refused is dropped (line breaks become spaces) and the result cut to the limit, so
that an odd profile cannot lock its owner out.

Why not a PRECIS profile (RFC 8264, the ``precis-i18n`` package): its Nickname profile
rewrites text with NFKC (full-width letters, ligatures, superscripts changed), refuses
the emoji sequences built with ZERO WIDTH JOINER, and has no multi-line form.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from servicekit.errors import InvalidArgument

__all__ = ["clean_text", "refusal", "sanitize_text"]

UNICODE_VERSION: Final = unicodedata.unidata_version
OVERSIZE_FACTOR: Final = 4

# Unicode's White_Space property (PropList.txt); str.isspace() also counts U+001C-U+001F,
# which are control characters, not white space.
WHITE_SPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
JOINERS: Final = frozenset("\u200c\u200d")
BIDI_CONTROLS: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
MULTILINE_CONTROLS: Final = frozenset("\n\t")
# Letters and symbols that render as nothing: a name of only these looks empty.
BLANK_CHARACTERS: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800")
VISIBLE_CATEGORIES: Final = frozenset("LNPS")

# The standard abbreviations of the C0 controls and DEL, which have no Unicode name.
_C0_ABBREVIATIONS: Final = (
    "NUL",
    "SOH",
    "STX",
    "ETX",
    "EOT",
    "ENQ",
    "ACK",
    "BEL",
    "BS",
    "HT",
    "LF",
    "VT",
    "FF",
    "CR",
    "SO",
    "SI",
    "DLE",
    "DC1",
    "DC2",
    "DC3",
    "DC4",
    "NAK",
    "SYN",
    "ETB",
    "CAN",
    "EM",
    "SUB",
    "ESC",
    "FS",
    "GS",
    "RS",
    "US",
)


def clean_text(
    value: str, *, field: str, max_length: int, required: bool = True, multiline: bool = False
) -> str:
    """The stored form of a free-text field, or InvalidArgument naming ``field``.

    ``required``: empty text is refused; otherwise it is returned as "".
    ``multiline``: LF and TAB are allowed inside (CR LF is stored as LF).
    """
    if len(value) > OVERSIZE_FACTOR * max_length:
        raise InvalidArgument(field, f"must be at most {max_length} characters, got {len(value)}")
    if multiline:
        value = value.replace("\r\n", "\n")
    text = value.strip(WHITE_SPACE)
    for index, character in enumerate(text):
        problem = refusal(text, index, multiline=multiline)
        if problem is not None:
            raise InvalidArgument(field, f"must not contain {describe(character)}, {problem}")
    text = unicodedata.normalize("NFC", text)
    if not text:
        if required:
            raise InvalidArgument(field, "is required")
        return text
    if not has_visible_character(text):
        alternative = "" if required else ", or be empty"
        raise InvalidArgument(field, f"must contain a visible character{alternative}")
    if len(text) > max_length:
        raise InvalidArgument(field, f"must be at most {max_length} characters, got {len(text)}")
    return text


def sanitize_text(value: str, *, max_length: int) -> str:
    """Single-line text from a third party made acceptable: never raises.

    What :func:`clean_text` would refuse is dropped (line breaks and tabs become a
    space), the rest normalized and cut to ``max_length``; "" when nothing visible is
    left.
    """
    spaced = "".join(" " if c in WHITE_SPACE else c for c in value).strip(WHITE_SPACE)
    kept = "".join(
        character
        for index, character in enumerate(spaced)
        if refusal(spaced, index, multiline=False) is None
    )
    text = unicodedata.normalize("NFC", kept)[:max_length].strip(WHITE_SPACE)
    # Dropping a character can leave a joiner at an edge, and cutting can split a pair.
    text = "".join(
        character
        for index, character in enumerate(text)
        if character not in JOINERS or _between_visible(text, index)
    )
    return text if has_visible_character(text) else ""


def refusal(text: str, index: int, *, multiline: bool) -> str | None:
    """Why ``text[index]`` may not be stored (a phrase for a message), or None if it may."""
    character = text[index]
    category = unicodedata.category(character)
    if category[0] in "LMNPS" or category == "Zs":
        return None
    if category == "Cc":
        if multiline and character in MULTILINE_CONTROLS:
            return None
        return "a control character"
    if category in ("Zl", "Zp"):
        return "a line or paragraph separator" + (" (use LF)" if multiline else "")
    if category == "Cf":
        if character in JOINERS and _between_visible(text, index):
            return None
        if character in BIDI_CONTROLS:
            return "a bidirectional control character"
        if character in JOINERS:
            return "a joiner that is not between two visible characters"
        return "an invisible formatting character"
    if category == "Cs":
        return "a lone surrogate"
    if category == "Co":
        return "a private-use character"
    if _is_noncharacter(character):
        return "a noncharacter"
    return f"a code point unassigned in Unicode {UNICODE_VERSION} (this server's version)"


def describe(character: str) -> str:
    """``U+001B (ESC)``, ``U+202E (RIGHT-TO-LEFT OVERRIDE)`` or ``U+E000``."""
    code = ord(character)
    name = unicodedata.name(character, "")
    if not name and code < len(_C0_ABBREVIATIONS):
        name = _C0_ABBREVIATIONS[code]
    elif code == 0x7F:
        name = "DEL"
    return f"U+{code:04X} ({name})" if name else f"U+{code:04X}"


def has_visible_character(text: str) -> bool:
    return any(_is_visible(c) for c in text)


def _is_visible(character: str) -> bool:
    return (
        unicodedata.category(character)[0] in VISIBLE_CATEGORIES
        and character not in BLANK_CHARACTERS
    )


def _between_visible(text: str, index: int) -> bool:
    """A joiner's neighbours are visible characters or marks (a virama, an emoji's
    variation selector) that follow one."""
    before = text[index - 1] if index > 0 else ""
    after = text[index + 1] if index + 1 < len(text) else ""
    return bool(before and after) and all(
        _is_visible(c) or unicodedata.category(c)[0] == "M" for c in (before, after)
    )


def _is_noncharacter(character: str) -> bool:
    code = ord(character)
    return 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE
