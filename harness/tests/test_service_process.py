"""harness.ServiceProcess with a stand-in module: its environment and its log tail."""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness import ServiceProcess
from harness.grpc_runtime import GRPC_RUNTIME_ENV
from harness.service_process import LOG_TAIL_LINES

CHATTY = f"""
import json, os, time
print("first line")
for n in range({LOG_TAIL_LINES + 100}):
    print(f"line {{n}}")
print(json.dumps({{"event": "serving", "port": 1}}))
print(json.dumps({{"environment": os.environ.get("GRPC_EXPERIMENTS")}}), flush=True)
time.sleep(60)
"""


def test_a_process_gets_the_grpc_runtime_and_its_whole_log_beyond_the_kept_tail(
    tmp_path: Path,
) -> None:
    (tmp_path / "chatty.py").write_text(CHATTY)
    process = ServiceProcess(
        name="chatty",
        module="chatty",
        env={"PYTHONPATH": str(tmp_path)},
        log_path=tmp_path / "logs" / "chatty.log",
    )
    with process:
        assert process.port == 1
        deadline = time.monotonic() + 10
        last = process.log_tail(1)
        while "environment" not in last:  # the line after "serving", read a moment later
            assert time.monotonic() < deadline, last
            time.sleep(0.01)
            last = process.log_tail(1)
        environment = json.loads(last)["environment"]
        assert environment == GRPC_RUNTIME_ENV["GRPC_EXPERIMENTS"]
        assert process.log_tail(2).splitlines()[0].startswith('{"event": "serving"')
        assert "first line" not in process.log_tail(LOG_TAIL_LINES)  # beyond memory
        everything = process.log_tail(100_000).splitlines()
        assert everything[0] == "first line"
        assert len(everything) == 1 + LOG_TAIL_LINES + 100 + 2
