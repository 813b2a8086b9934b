"""The user service's contract: what every implementation must do, seen through gRPC only.

The suite needs one fixture, ``user_stub``: a ``UserServiceStub`` connected to the
implementation under test, over a database that is empty at the start of each
test. This repository's conftest.py provides it; so can any other runner.

Every assertion is a promise of contracts/user/v1/user.proto. Where the proto
leaves a choice (an empty label in an address's domain, say), the suite only checks what
it does promise: the answer is OK or INVALID_ARGUMENT naming the field, never
UNKNOWN or INTERNAL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

import grpc
import pytest

from contracts.support import INVISIBLE_TEXT, REFUSED_CHARACTERS, expect_status
from user.v1 import user_pb2 as pb

if TYPE_CHECKING:
    # the stub's asyncio flavour only exists for the type checker
    from user.v1.user_pb2_grpc import UserServiceAsyncStub as UserServiceStub

Code = grpc.StatusCode


def address_of(length: int, domain: str = "example.com") -> str:
    """A well-formed address of exactly ``length`` characters."""
    return "a" * (length - len(domain) - 1) + "@" + domain


async def create(
    stub: UserServiceStub, email: str = "ann@example.com", name: str = "", avatar_url: str = ""
) -> pb.User:
    request = pb.CreateUserRequest(email=email, name=name, avatar_url=avatar_url)
    return (await stub.CreateUser(request)).user


# ---------------------------------------------------------------- round trip


async def test_create_then_get_and_get_by_email_return_the_same_user(
    user_stub: UserServiceStub,
) -> None:
    created = await create(
        user_stub, "ann.lee@example.com", name="Ann Lee", avatar_url="https://example.com/a.png"
    )
    assert UUID(created.id)
    assert created.email == "ann.lee@example.com"
    assert created.name == "Ann Lee"
    assert created.avatar_url == "https://example.com/a.png"
    assert created.HasField("create_time")
    assert created.create_time.seconds > 0
    by_id = await user_stub.GetUser(pb.GetUserRequest(id=created.id))
    assert by_id.user == created
    by_email = await user_stub.GetUserByEmail(pb.GetUserByEmailRequest(email=created.email))
    assert by_email.user == created


async def test_users_are_told_apart(user_stub: UserServiceStub) -> None:
    ann = await create(user_stub, "ann@example.com", name="Ann")
    bob = await create(user_stub, "bob@example.com", name="Bob")
    assert ann.id != bob.id
    assert (await user_stub.GetUser(pb.GetUserRequest(id=bob.id))).user == bob
    found = await user_stub.GetUserByEmail(pb.GetUserByEmailRequest(email="ann@example.com"))
    assert found.user == ann


# ---------------------------------------------------------------- e-mail normalization

NORMALIZED = {
    "surrounding white space trimmed": ("  ann@example.com\t", "ann@example.com"),
    "domain lower-cased": ("ann@Mail.EXAMPLE.Com", "ann@mail.example.com"),
    "local part kept as given": ("Ann.Lee@example.com", "Ann.Lee@example.com"),
    "all at once": (" Ann.Lee@Example.COM ", "Ann.Lee@example.com"),
}


@pytest.mark.parametrize(("given", "stored"), NORMALIZED.values(), ids=NORMALIZED.keys())
async def test_email_is_stored_normalized(
    user_stub: UserServiceStub, given: str, stored: str
) -> None:
    created = await create(user_stub, given)
    assert created.email == stored
    fetched = await user_stub.GetUser(pb.GetUserRequest(id=created.id))
    assert fetched.user.email == stored


@pytest.mark.parametrize(
    "lookup",
    [
        "Ann.Lee@example.com",
        "ann.lee@example.com",
        "ANN.LEE@EXAMPLE.COM",
        "  aNN.lEE@Example.Com  ",
    ],
    ids=["as stored", "lower case", "upper case", "padded, mixed case"],
)
async def test_get_by_email_ignores_case(user_stub: UserServiceStub, lookup: str) -> None:
    created = await create(user_stub, "Ann.Lee@Example.COM")
    found = await user_stub.GetUserByEmail(pb.GetUserByEmailRequest(email=lookup))
    assert found.user == created


# ---------------------------------------------------------------- CreateUser validation

INVALID_CREATES = {
    "email missing": (pb.CreateUserRequest(name="Ann"), "email"),
    "email blank": (pb.CreateUserRequest(email=" \t "), "email"),
    "email without @": (pb.CreateUserRequest(email="ann.example.com"), "email"),
    "email with two @": (pb.CreateUserRequest(email="ann@lee@example.com"), "email"),
    "email without local part": (pb.CreateUserRequest(email="@example.com"), "email"),
    "email without domain": (pb.CreateUserRequest(email="ann@"), "email"),
    "email domain without dot": (pb.CreateUserRequest(email="ann@localhost"), "email"),
    "email with inner white space": (pb.CreateUserRequest(email="ann lee@example.com"), "email"),
    "email of 255 characters": (pb.CreateUserRequest(email=address_of(255)), "email"),
    "email of 10000 characters": (pb.CreateUserRequest(email=address_of(10_000)), "email"),
    "name of 201 characters": (
        pb.CreateUserRequest(email="ann@example.com", name="n" * 201),
        "name",
    ),
    "name with NUL": (pb.CreateUserRequest(email="ann@example.com", name="An\x00n"), "name"),
    "name with newline": (
        pb.CreateUserRequest(email="ann@example.com", name="Ann\nLee"),
        "name",
    ),
    "avatar_url with NUL": (
        pb.CreateUserRequest(email="ann@example.com", avatar_url="https://example.com/a\x00.png"),
        "avatar_url",
    ),
    "avatar_url relative": (
        pb.CreateUserRequest(email="ann@example.com", avatar_url="/avatars/ann.png"),
        "avatar_url",
    ),
    "avatar_url without scheme": (
        pb.CreateUserRequest(email="ann@example.com", avatar_url="example.com/ann.png"),
        "avatar_url",
    ),
    "avatar_url ftp": (
        pb.CreateUserRequest(email="ann@example.com", avatar_url="ftp://example.com/ann.png"),
        "avatar_url",
    ),
    "avatar_url javascript": (
        pb.CreateUserRequest(email="ann@example.com", avatar_url="javascript:alert(1)"),
        "avatar_url",
    ),
    "avatar_url without host": (
        pb.CreateUserRequest(email="ann@example.com", avatar_url="https:///ann.png"),
        "avatar_url",
    ),
    "avatar_url of 2049 characters": (
        pb.CreateUserRequest(
            email="ann@example.com", avatar_url="https://example.com/" + "p" * 2029
        ),
        "avatar_url",
    ),
}


@pytest.mark.parametrize(
    ("request_", "field"), INVALID_CREATES.values(), ids=INVALID_CREATES.keys()
)
async def test_create_rejects_invalid_fields(
    user_stub: UserServiceStub, request_: pb.CreateUserRequest, field: str
) -> None:
    await expect_status(user_stub.CreateUser(request_), Code.INVALID_ARGUMENT, mentions=field)


async def test_a_refused_create_stores_nothing(user_stub: UserServiceStub) -> None:
    request = pb.CreateUserRequest(email="ann@example.com", avatar_url="/not/absolute.png")
    await expect_status(user_stub.CreateUser(request), Code.INVALID_ARGUMENT)
    call = user_stub.GetUserByEmail(pb.GetUserByEmailRequest(email="ann@example.com"))
    await expect_status(call, Code.NOT_FOUND)


BOUNDARIES = {
    "email of 254 characters": {"email": address_of(254)},
    "shortest email": {"email": "a@b.co"},
    "name of 200 characters": {"name": "n" * 200},
    "empty name and avatar_url": {"name": "", "avatar_url": ""},
    "http avatar_url": {"avatar_url": "http://example.com/ann.png"},
    "avatar_url of 2048 characters": {"avatar_url": "https://example.com/" + "p" * 2028},
    "non-ASCII name": {"name": "Zoë Ñúñez 李"},
}


@pytest.mark.parametrize("fields", BOUNDARIES.values(), ids=BOUNDARIES.keys())
async def test_values_at_the_limits_are_accepted_and_kept(
    user_stub: UserServiceStub, fields: dict[str, str]
) -> None:
    request = pb.CreateUserRequest(**{"email": "ann@example.com", **fields})
    created = (await user_stub.CreateUser(request)).user
    assert created.email == request.email
    assert created.name == request.name
    assert created.avatar_url == request.avatar_url
    assert (await user_stub.GetUser(pb.GetUserRequest(id=created.id))).user == created


# Addresses the proto's "local@domain" does not clearly rule in or out.
ODD_VALUES = {
    "empty domain label in email": {"email": "ann@example..com"},
}


@pytest.mark.parametrize("fields", ODD_VALUES.values(), ids=ODD_VALUES.keys())
async def test_odd_values_are_accepted_or_invalid_argument_never_internal(
    user_stub: UserServiceStub, fields: dict[str, str]
) -> None:
    (field,) = fields
    request = pb.CreateUserRequest(**{"email": "ann@example.com", **fields})
    refusal: grpc.aio.AioRpcError | None = None
    try:
        created = (await user_stub.CreateUser(request)).user
    except grpc.aio.AioRpcError as error:
        refusal = error
    if refusal is None:
        assert (await user_stub.GetUser(pb.GetUserRequest(id=created.id))).user == created
        return
    assert refusal.code() == Code.INVALID_ARGUMENT, f"{refusal.code().name}: {refusal.details()}"
    assert field in (refusal.details() or ""), f"{refusal.details()!r} should mention {field!r}"


# ---------------------------------------------------------------- the text policy

# Each refused character inside an otherwise valid value of each text field.
TEXT_FIELDS: dict[str, Callable[[str], str]] = {
    "email": lambda c: f"ann{c}lee@example.com",
    "name": lambda c: f"Ann{c}Lee",
    "avatar_url": lambda c: f"https://example.com/{c}.png",
}
REFUSED_TEXT = {
    **{
        f"{field} with {case}": (field, inside(c), point)
        for field, inside in TEXT_FIELDS.items()
        for case, (c, point) in REFUSED_CHARACTERS.items()
    },
    "email of only zero-width characters": ("email", "\u200b\u200d", "U+200B"),
    **{f"name of {case}": ("name", text, point) for case, (text, point) in INVISIBLE_TEXT.items()},
}


@pytest.mark.parametrize(
    ("field", "value", "mention"), REFUSED_TEXT.values(), ids=REFUSED_TEXT.keys()
)
async def test_create_refuses_text_outside_the_policy(
    user_stub: UserServiceStub, field: str, value: str, mention: str
) -> None:
    request = pb.CreateUserRequest(**{"email": "ann@example.com", field: value})
    error = await expect_status(
        user_stub.CreateUser(request), Code.INVALID_ARGUMENT, mentions=field
    )
    assert mention in (error.details() or "")
    lookup = user_stub.GetUserByEmail(pb.GetUserByEmailRequest(email="ann@example.com"))
    await expect_status(lookup, Code.NOT_FOUND)  # nothing stored


@pytest.mark.parametrize(
    ("character", "mention"), REFUSED_CHARACTERS.values(), ids=REFUSED_CHARACTERS.keys()
)
async def test_get_by_email_refuses_text_outside_the_policy(
    user_stub: UserServiceStub, character: str, mention: str
) -> None:
    await create(user_stub, "annlee@example.com")
    call = user_stub.GetUserByEmail(
        pb.GetUserByEmailRequest(email=f"ann{character}lee@example.com")
    )
    error = await expect_status(call, Code.INVALID_ARGUMENT, mentions="email")
    assert mention in (error.details() or "")


async def test_text_is_stored_composed_and_found_in_either_form(
    user_stub: UserServiceStub,
) -> None:
    created = await create(user_stub, "zoe\u0308@example.com", name="Zoe\u0308 Lee")
    assert (created.email, created.name) == ("zo\xeb@example.com", "Zo\xeb Lee")
    for form in ("zoe\u0308@example.com", "zo\xeb@example.com"):
        found = await user_stub.GetUserByEmail(pb.GetUserByEmailRequest(email=form))
        assert found.user == created


# ---------------------------------------------------------------- ALREADY_EXISTS


@pytest.mark.parametrize(
    "again",
    ["Ann.Lee@example.com", "ann.lee@example.com", "ANN.LEE@EXAMPLE.COM", " ann.LEE@Example.com "],
    ids=["same", "lower case", "upper case", "padded, mixed case"],
)
async def test_an_email_used_in_any_case_is_already_exists(
    user_stub: UserServiceStub, again: str
) -> None:
    first = await create(user_stub, "Ann.Lee@example.com", name="first")
    call = user_stub.CreateUser(pb.CreateUserRequest(email=again, name="second"))
    await expect_status(call, Code.ALREADY_EXISTS)
    # the first user is untouched and is the one found by e-mail
    assert (await user_stub.GetUser(pb.GetUserRequest(id=first.id))).user == first
    found = await user_stub.GetUserByEmail(pb.GetUserByEmailRequest(email=again))
    assert found.user == first


# ---------------------------------------------------------------- GetUser


@pytest.mark.parametrize(
    "user_id",
    ["", "42", "not-a-uuid", "00000000-0000-4000-8000"],
    ids=["missing", "a number", "a word", "truncated UUID"],
)
async def test_get_user_with_a_malformed_id_is_invalid_argument(
    user_stub: UserServiceStub, user_id: str
) -> None:
    call = user_stub.GetUser(pb.GetUserRequest(id=user_id))
    await expect_status(call, Code.INVALID_ARGUMENT, mentions="id")


async def test_get_user_unknown_is_not_found(user_stub: UserServiceStub) -> None:
    await create(user_stub)
    await expect_status(user_stub.GetUser(pb.GetUserRequest(id=str(uuid4()))), Code.NOT_FOUND)


# ---------------------------------------------------------------- GetUserByEmail


@pytest.mark.parametrize(
    "email",
    ["", "   ", "ann", "ann@lee@example.com", "@example.com", "ann@localhost", address_of(255)],
    ids=[
        "missing",
        "blank",
        "without @",
        "with two @",
        "without local part",
        "domain without dot",
        "255 characters",
    ],
)
async def test_get_user_by_email_with_a_malformed_email_is_invalid_argument(
    user_stub: UserServiceStub, email: str
) -> None:
    call = user_stub.GetUserByEmail(pb.GetUserByEmailRequest(email=email))
    await expect_status(call, Code.INVALID_ARGUMENT, mentions="email")


@pytest.mark.parametrize(
    "email",
    ["bob@example.com", "ann@example.co", "%@example.com", "ann@example.com.evil.io"],
    ids=["another address", "a prefix", "a LIKE pattern", "a longer domain"],
)
async def test_get_user_by_email_unknown_is_not_found(
    user_stub: UserServiceStub, email: str
) -> None:
    await create(user_stub, "ann@example.com")
    call = user_stub.GetUserByEmail(pb.GetUserByEmailRequest(email=email))
    await expect_status(call, Code.NOT_FOUND)
