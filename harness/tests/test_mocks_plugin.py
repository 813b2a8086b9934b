"""harness.mocks as a test writer uses it: pytester runs a small unit test file of a user."""

from __future__ import annotations

import pytest

INI = """
[pytest]
addopts = --strict-markers --strict-config
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
filterwarnings = error
"""

# A user's unit tests of code that calls the dummy service (through its DummyClient); the
# mock stands in for the service. The fixture is the one the plugin is meant to provide.
USER_TESTS = '''
import grpc
import pytest

from dummy import DummyClient
from dummy.v1 import dummy_pb2, dummy_pb2_grpc
from harness import GrpcMocks

OWNER = "7b3f6a52-2c1e-4f7a-9d55-0c3b1e8f4a10"


@pytest.fixture
def grpc_mocks():
    with GrpcMocks() as mocks:
        yield mocks
        mocks.assert_no_errors()


async def entity_name_or_none(client, owner_id, entity_id):
    """The code under test: NOT_FOUND means None, other errors propagate."""
    try:
        response = await client.get_entity(
            dummy_pb2.GetEntityRequest(owner_id=owner_id, id=entity_id)
        )
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return response.entity.name


async def test_found_then_missing(grpc_mocks):
    entities = grpc_mocks.of(dummy_pb2_grpc.DummyServiceStub)
    entities.when(lambda stub: stub.GetEntity).returns(
        dummy_pb2.GetEntityResponse(entity=dummy_pb2.Entity(id="e-1", name="first"))
    ).then().fails(grpc.StatusCode.NOT_FOUND, "no such entity")

    async with entities.channel() as channel:
        client = DummyClient(channel)
        assert await entity_name_or_none(client, OWNER, "e-1") == "first"
        assert await entity_name_or_none(client, OWNER, "e-1") is None

    entities.verify(lambda stub: stub.GetEntity).called_times(2)
    entities.verify(lambda stub: stub.DeleteEntity).never_called()


async def test_asks_for_the_wrong_entity(grpc_mocks):
    entities = grpc_mocks.of(dummy_pb2_grpc.DummyServiceStub)
    entities.when(lambda stub: stub.GetEntity).fails(grpc.StatusCode.NOT_FOUND, "none")

    async with entities.channel() as channel:
        await entity_name_or_none(DummyClient(channel), OWNER, "e-typo")

    entities.verify(lambda stub: stub.GetEntity).called_once_with(
        dummy_pb2.GetEntityRequest(owner_id=OWNER, id="e-1")
    )
'''


def test_a_mock_stands_in_for_a_service_in_a_unit_test(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_entities=USER_TESTS)

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, failed=1)
    # the failure shows what was expected and every call actually received
    result.stdout.fnmatch_lines(
        [
            "*MockVerificationError: dummy.v1.DummyService.GetEntity: expected 1 call with",
            "*GetEntityRequest {",
            '*owner_id: "7b3f6a52-2c1e-4f7a-9d55-0c3b1e8f4a10"',
            '*id: "e-1"',
            "*but received 1 call:",
            "*#1 at * from ipv4:127.0.0.1:*; metadata: *",
            "*GetEntityRequest {",
            '*id: "e-typo"',
            "*FAILED test_entities.py::test_asks_for_the_wrong_entity*",
        ]
    )
