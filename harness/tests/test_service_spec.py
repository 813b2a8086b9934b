"""ServiceSpec checks what it is given when it is made, and names the field it refuses."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from harness import ServiceSpec

MESSAGES = "opentelemetry.proto.collector.trace.v1.trace_service_pb2"


@pytest.mark.parametrize(
    ("proto", "expected"),
    [
        pytest.param(trace_service_pb2, MESSAGES, id="the module itself"),
        pytest.param(MESSAGES, MESSAGES, id="its dotted name"),
        pytest.param("", "", id="none: not mockable"),
    ],
)
def test_proto_is_kept_as_the_module_name(proto: object, expected: str) -> None:
    spec = ServiceSpec(name="traces", grpc_port=4317, proto=proto)  # type: ignore[arg-type]
    assert spec.proto_module == expected
    assert spec.proto == expected


@pytest.mark.parametrize(
    ("proto", "message"),
    [
        pytest.param(trace_service_pb2_grpc, "not a generated messages module", id="stubs module"),
        pytest.param(MESSAGES + "_grpc", "is the stubs module; give the messages", id="stubs name"),
        pytest.param("dummy/v1/dummy_pb2.py", "not a dotted module name", id="a path"),
        pytest.param(42, "not int 42", id="a number"),
    ],
)
def test_a_proto_that_is_no_messages_module_is_refused_naming_the_field(
    proto: object, message: str
) -> None:
    with pytest.raises(ValueError, match=r"ServiceSpec\('traces'\)\.proto: ") as refused:
        ServiceSpec(name="traces", grpc_port=4317, proto=proto)  # type: ignore[arg-type]
    assert message in str(refused.value)
