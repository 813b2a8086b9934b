"""What a provider says about an account, made fit for the user service (auth.oauth.identity):
display names and avatars are cleaned so that an odd profile never locks its owner out;
an e-mail address or account id outside the text policy rejects the login."""

from __future__ import annotations

import dataclasses

import pytest

from auth.errors import ProviderRejected
from auth.oauth import InMemoryOauthProvider, OauthIdentity, Provider, complete_login, start_login
from auth.oauth.identity import usable_identity

IDENTITY = OauthIdentity(
    provider=Provider.GITHUB,
    provider_user_id="583231",
    email="octocat@example.com",
    name="The Octocat",
    avatar_url="https://avatars.example.com/u/583231",
)

# field -> (what the provider says, what the user service is given)
CLEANED = {
    "clean profile unchanged": ({}, {}),
    "ESC colour codes dropped from the name": (
        {"name": "\x1b[31mOcto\x1b[0m"},
        {"name": "[31mOcto[0m"},
    ),
    "bidi override dropped from the name": ({"name": "Octo\u202ecat"}, {"name": "Octocat"}),
    "line break in the name becomes a space": ({"name": "Octo\ncat"}, {"name": "Octo cat"}),
    "name of zero-width characters becomes empty": ({"name": "\u200b\u200d"}, {"name": ""}),
    "name cut to 200 characters": ({"name": "n" * 500}, {"name": "n" * 200}),
    "name composed (NFC)": ({"name": "Zoe\u0308"}, {"name": "Zo\xeb"}),
    "emoji sequence kept in the name": (
        {"name": "\U0001f468\u200d\U0001f469\u200d\U0001f467"},
        {"name": "\U0001f468\u200d\U0001f469\u200d\U0001f467"},
    ),
    "javascript avatar dropped": ({"avatar_url": "javascript:alert(1)"}, {"avatar_url": ""}),
    "avatar with a control character dropped": (
        {"avatar_url": "https://x.example/\x1b.png"},
        {"avatar_url": ""},
    ),
    "avatar with a bad port dropped": (
        {"avatar_url": "https://x.example:99999/a.png"},
        {"avatar_url": ""},
    ),
    "avatar over 2048 characters dropped": (
        {"avatar_url": "https://x.example/" + "p" * 2031},
        {"avatar_url": ""},
    ),
    "e-mail composed (NFC)": ({"email": "zoe\u0308@example.com"}, {"email": "zo\xeb@example.com"}),
}


@pytest.mark.parametrize(("given", "kept"), CLEANED.values(), ids=CLEANED.keys())
def test_names_and_avatars_are_cleaned(given: dict[str, str], kept: dict[str, str]) -> None:
    identity = dataclasses.replace(IDENTITY, **given)  # type: ignore[arg-type]

    assert usable_identity(identity) == dataclasses.replace(IDENTITY, **kept)  # type: ignore[arg-type]


REJECTED = {
    "e-mail with a right-to-left override": ({"email": "ann\u202e@example.com"}, "U+202E"),
    "e-mail with a zero-width space": ({"email": "ann\u200b@example.com"}, "U+200B"),
    "e-mail with ESC": ({"email": "ann\x1b@example.com"}, "U+001B"),
    "e-mail empty": ({"email": ""}, "email: is required"),
    "account id with NUL": ({"provider_user_id": "58\x003"}, "U+0000"),
    "account id of 256 characters": ({"provider_user_id": "9" * 256}, "at most 255"),
}


@pytest.mark.parametrize(("given", "detail"), REJECTED.values(), ids=REJECTED.keys())
def test_an_unusable_email_or_account_id_rejects_the_login(
    given: dict[str, str], detail: str
) -> None:
    identity = dataclasses.replace(IDENTITY, **given)  # type: ignore[arg-type]

    with pytest.raises(ProviderRejected) as rejected:
        usable_identity(identity)

    assert rejected.value.provider == Provider.GITHUB
    assert "cannot be used" in rejected.value.message
    assert detail in rejected.value.detail  # for the log, not the caller


async def test_a_login_hands_over_the_cleaned_identity() -> None:
    odd = dataclasses.replace(IDENTITY, name="\x07Octo\u202ecat\u200b")
    provider = InMemoryOauthProvider(Provider.GITHUB, identity=odd)
    start = start_login(provider)

    identity = await complete_login(
        provider,
        code=provider.authorize(start.authorization_url),
        state=start.state,
        expected_state=start.state,
        code_verifier=start.code_verifier,
    )

    assert identity == dataclasses.replace(IDENTITY, name="Octocat")
