"""servicekit.text: the one text policy, on tables of accepted and refused text and on
properties Hypothesis checks over arbitrary strings."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from servicekit.errors import InvalidArgument
from servicekit.text import WHITE_SPACE, clean_text, refusal, sanitize_text

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man ZWJ woman ZWJ girl
HEART_ON_FIRE = "\u2764\ufe0f\u200d\U0001f525"  # the joiner follows a variation selector
PERSIAN = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "I want", ZWNJ after the prefix
DEVANAGARI_HALF_FORM = "\u0915\u094d\u200d\u0937"  # KA VIRAMA ZWJ SSA

# given -> stored, single-line and required unless the id says otherwise
ACCEPTED = {
    "plain": ("Ann", "Ann"),
    "trimmed": ("  Ann\t\n", "Ann"),
    "trimmed of no-break and ideographic spaces": ("\xa0\u3000Ann\u2003", "Ann"),
    "inner spaces kept": ("Ann  Lee", "Ann  Lee"),
    "inner ideographic space kept": (
        "\u5c71\u7530\u3000\u592a\u90ce",
        "\u5c71\u7530\u3000\u592a\u90ce",
    ),
    "decomposed é stored composed (NFC)": ("Zoe\u0308", "Zo\xeb"),
    "full-width letters kept (no NFKC)": ("\uff21\uff4e\uff4e", "\uff21\uff4e\uff4e"),
    "emoji": ("\U0001f600", "\U0001f600"),
    "emoji family joined by ZWJ": (FAMILY, FAMILY),
    "ZWJ after a variation selector": (HEART_ON_FIRE, HEART_ON_FIRE),
    "Persian with ZWNJ": (PERSIAN, PERSIAN),
    "Devanagari half form with ZWJ": (DEVANAGARI_HALF_FORM, DEVANAGARI_HALF_FORM),
    "right-to-left script without controls": (
        "\u05e9\u05dc\u05d5\u05dd",
        "\u05e9\u05dc\u05d5\u05dd",
    ),
    "punctuation only": ("?!", "?!"),
    "Hangul filler beside a letter": ("a\u3164", "a\u3164"),
}


@pytest.mark.parametrize(("given", "stored"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_text_is_stored_in_its_clean_form(given: str, stored: str) -> None:
    assert clean_text(given, field="name", max_length=200) == stored


# given -> the message after "name: "
REFUSED = {
    "BEL": ("ding\x07", "must not contain U+0007 (BEL), a control character"),
    "ESC colour sequence": (
        "\x1b[31mred\x1b[0m",
        "must not contain U+001B (ESC), a control character",
    ),
    "NUL": ("a\x00b", "must not contain U+0000 (NUL), a control character"),
    "DEL": ("a\x7fb", "must not contain U+007F (DEL), a control character"),
    "C1 control": ("a\x9bb", "must not contain U+009B, a control character"),
    "information separator (str.isspace counts it)": (
        "\x1fa",
        "must not contain U+001F (US), a control character",
    ),
    "inner line feed": ("Ann\nLee", "must not contain U+000A (LF), a control character"),
    "inner tab": ("Ann\tLee", "must not contain U+0009 (HT), a control character"),
    "inner carriage return": ("Ann\rLee", "must not contain U+000D (CR), a control character"),
    "line separator": (
        "a\u2028b",
        "must not contain U+2028 (LINE SEPARATOR), a line or paragraph separator",
    ),
    "right-to-left override": (
        "abc\u202edef",
        "must not contain U+202E (RIGHT-TO-LEFT OVERRIDE), a bidirectional control character",
    ),
    "right-to-left isolate": (
        "a\u2067b",
        "must not contain U+2067 (RIGHT-TO-LEFT ISOLATE), a bidirectional control character",
    ),
    "left-to-right mark": (
        "a\u200eb",
        "must not contain U+200E (LEFT-TO-RIGHT MARK), a bidirectional control character",
    ),
    "Arabic letter mark": (
        "a\u061cb",
        "must not contain U+061C (ARABIC LETTER MARK), a bidirectional control character",
    ),
    "only zero-width spaces": (
        "\u200b\u200b",
        "must not contain U+200B (ZERO WIDTH SPACE), an invisible formatting character",
    ),
    "zero-width space inside": (
        "ad\u200bmin",
        "must not contain U+200B (ZERO WIDTH SPACE), an invisible formatting character",
    ),
    "byte order mark": (
        "\ufeffAnn",
        "must not contain U+FEFF (ZERO WIDTH NO-BREAK SPACE), an invisible formatting character",
    ),
    "word joiner": (
        "a\u2060b",
        "must not contain U+2060 (WORD JOINER), an invisible formatting character",
    ),
    "soft hyphen": (
        "a\xadb",
        "must not contain U+00AD (SOFT HYPHEN), an invisible formatting character",
    ),
    "tag character": (
        "a\U000e0041",
        "must not contain U+E0041 (TAG LATIN CAPITAL LETTER A), an invisible formatting character",
    ),
    "only a zero-width joiner": (
        "\u200d",
        "must not contain U+200D (ZERO WIDTH JOINER), "
        "a joiner that is not between two visible characters",
    ),
    "zero-width joiner at the end": (
        "a\u200d",
        "must not contain U+200D (ZERO WIDTH JOINER), "
        "a joiner that is not between two visible characters",
    ),
    "zero-width non-joiner beside a space": (
        "a\u200c b",
        "must not contain U+200C (ZERO WIDTH NON-JOINER), "
        "a joiner that is not between two visible characters",
    ),
    "private use": ("a\ue000", "must not contain U+E000, a private-use character"),
    "noncharacter U+FFFF": ("a\uffff", "must not contain U+FFFF, a noncharacter"),
    "noncharacter U+FDD0": ("a\ufdd0", "must not contain U+FDD0, a noncharacter"),
    "lone surrogate": ("a\ud800", "must not contain U+D800, a lone surrogate"),
    "only a Hangul filler": ("\u3164", "must contain a visible character"),
    "only a braille blank": ("\u2800\u2800", "must contain a visible character"),
    "only a combining mark": ("\u0301", "must contain a visible character"),
    "empty": ("", "is required"),
    "only white space": (" \t\u3000\n", "is required"),
    "201 characters": ("n" * 201, "must be at most 200 characters, got 201"),
    "201 characters once composed": ("e\u0301" * 201, "must be at most 200 characters, got 201"),
    "over four times the limit, refused unread": (
        "\x07" * 801,
        "must be at most 200 characters, got 801",
    ),
}


@pytest.mark.parametrize(("given", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_refused_text_names_the_field_and_the_code_point(given: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        clean_text(given, field="name", max_length=200)

    assert refused.value.field == "name"
    assert refused.value.message == f"name: {message}"


def test_unassigned_code_points_are_refused_with_the_unicode_version() -> None:
    unassigned = "\U000e0080"  # between the tags and the variation selectors: never assigned
    assert unicodedata.category(unassigned) == "Cn"

    with pytest.raises(InvalidArgument) as refused:
        clean_text(f"a{unassigned}", field="name", max_length=200)

    assert refused.value.message == (
        f"name: must not contain U+E0080, a code point unassigned in Unicode "
        f"{unicodedata.unidata_version} (this server's version)"
    )


MULTILINE = {
    "line feed and tab kept": ("one\n\ttwo", "one\n\ttwo"),
    "CR LF stored as LF": ("one\r\ntwo\r\n", "one\ntwo"),
    "surrounding blank lines trimmed": ("\n\n one \n\n", "one"),
}


@pytest.mark.parametrize(("given", "stored"), MULTILINE.values(), ids=MULTILINE.keys())
def test_a_multiline_field_keeps_line_feeds_and_tabs(given: str, stored: str) -> None:
    assert clean_text(given, field="description", max_length=200, multiline=True) == stored


MULTILINE_REFUSED = {
    "lone carriage return": ("one\rtwo", "U+000D (CR), a control character"),
    "vertical tab": ("one\vtwo", "U+000B (VT), a control character"),
    "line separator": (
        "one\u2028two",
        "U+2028 (LINE SEPARATOR), a line or paragraph separator (use LF)",
    ),
    "escape": ("one\x1b[2Jtwo", "U+001B (ESC), a control character"),
}


@pytest.mark.parametrize(
    ("given", "offender"), MULTILINE_REFUSED.values(), ids=MULTILINE_REFUSED.keys()
)
def test_a_multiline_field_refuses_other_controls(given: str, offender: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        clean_text(given, field="description", max_length=200, multiline=True)

    assert refused.value.message == f"description: must not contain {offender}"


OPTIONAL = {
    "empty": ("", ""),
    "only white space": ("  \n", ""),
}


@pytest.mark.parametrize(("given", "stored"), OPTIONAL.values(), ids=OPTIONAL.keys())
def test_an_optional_field_may_be_empty(given: str, stored: str) -> None:
    assert clean_text(given, field="name", max_length=10, required=False) == stored


def test_an_optional_field_that_is_not_empty_must_be_visible() -> None:
    with pytest.raises(InvalidArgument) as refused:
        clean_text("\u3164", field="name", max_length=10, required=False)

    assert refused.value.message == "name: must contain a visible character, or be empty"


SANITIZED = {
    "clean text unchanged": ("Ada Lovelace", "Ada Lovelace"),
    "ESC sequence stripped of its controls": ("\x1b[1mAda\x1b[0m", "[1mAda[0m"),
    "bidi override dropped": ("Ada\u202e Lovelace", "Ada Lovelace"),
    "line breaks become spaces": ("Ada\nLovelace", "Ada Lovelace"),
    "only zero-width characters: nothing left": ("\u200b\u200d\ufeff", ""),
    "only a Hangul filler: nothing left": ("\u3164", ""),
    "emoji sequence kept": (FAMILY, FAMILY),
    "joiner left at an edge by a dropped character dropped too": ("a\u200d\x07", "a"),
    "cut to the limit": ("x" * 300, "x" * 20),
    "cut before trailing space": ("abcdefghijklmnopqrs tuv", "abcdefghijklmnopqrs"),
    "joiner left at the cut dropped": ("x" * 18 + FAMILY, "x" * 18 + "\U0001f468"),
}


@pytest.mark.parametrize(("given", "kept"), SANITIZED.values(), ids=SANITIZED.keys())
def test_sanitize_keeps_what_the_policy_accepts(given: str, kept: str) -> None:
    assert sanitize_text(given, max_length=20) == kept


# ---------------------------------------------------------------- properties

any_text = st.text(alphabet=st.characters(codec=None), max_size=60)
hostile_text = st.text(
    alphabet=st.one_of(
        st.characters(codec=None),
        st.sampled_from(
            "\x00\x07\x1b\n\r\t\u200b\u200c\u200d\u202e\u2066\ufeff\u3164\u2028\ue000\uffff"
            "\u0301 \xa0eA"
        ),
    ),
    max_size=60,
)


@settings(derandomize=True, max_examples=500)
@given(st.one_of(any_text, hostile_text), st.booleans(), st.booleans())
@example("a\u200d", True, False)
@example("Zoe\u0308", True, False)
def test_text_is_either_refused_by_name_or_stored_clean_and_stable(
    text: str, required: bool, multiline: bool
) -> None:
    refused: InvalidArgument | None = None
    try:
        stored = clean_text(text, field="f", max_length=40, required=required, multiline=multiline)
    except InvalidArgument as error:
        refused = error
    if refused is not None:
        assert refused.field == "f"
        assert refused.message.startswith("f: ")
        return
    assert stored == stored.strip(WHITE_SPACE)
    assert unicodedata.is_normalized("NFC", stored)
    assert len(stored) <= 40
    assert all(refusal(stored, i, multiline=multiline) is None for i in range(len(stored)))
    assert stored or not required
    # The stored form is accepted again unchanged: what is read back can be written back.
    assert clean_text(stored, field="f", max_length=40, required=required, multiline=multiline) == (
        stored
    )


@settings(derandomize=True, max_examples=500)
@given(st.one_of(any_text, hostile_text))
@example("Zoe\u0308 \x1b\u200d")
def test_sanitized_text_is_always_accepted_unchanged(text: str) -> None:
    kept = sanitize_text(text, max_length=20)

    assert clean_text(kept, field="name", max_length=20, required=False) == kept
