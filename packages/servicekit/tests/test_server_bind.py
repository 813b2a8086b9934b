"""create_server binds the port it is given, or fails clearly; it never shares a port."""

from __future__ import annotations

import pytest

from servicekit.server import create_server

pytestmark = pytest.mark.integration  # binds loopback sockets


async def test_port_zero_binds_a_free_port_and_a_taken_port_is_refused() -> None:
    first = create_server("127.0.0.1:0", [])
    assert first.port > 0
    with pytest.raises(OSError, match=f"127.0.0.1:{first.port}: is another process using"):
        create_server(f"127.0.0.1:{first.port}", [])
    await first.grpc_server.stop(grace=0)
