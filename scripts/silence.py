"""Run a command as CI would (its output a pipe, not a terminal) and measure its longest
silence: the longest time between two lines of its output.

    python scripts/silence.py -- python scripts/images.py build --auto-base
    python scripts/silence.py --until '^ready' -- python scripts/dev.py --ports 0

Each line is echoed with the seconds since the start; at the end (or when a line matches
``--until``, after which the command gets SIGINT and is waited for) it prints the total
time, the longest silence and the line that ended it. The figures of the README's
"Progress on long work" were made with it.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--until", help="stop the command at the first line matching this regex")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds (default 3600)")
    parser.add_argument("command", nargs="+", help="the command, after --")
    args = parser.parse_args()
    until = re.compile(args.until) if args.until else None
    started = last = time.monotonic()
    longest, ended_by = 0.0, "(start)"
    with subprocess.Popen(
        args.command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            now = time.monotonic()
            if now - last > longest:
                longest, ended_by = now - last, line.rstrip("\n")
            last = now
            print(f"{now - started:7.1f}  {line}", end="", flush=True)
            if now - started > args.timeout:
                process.kill()
                break
            if until is not None and until.search(line):
                process.send_signal(signal.SIGINT)
                until = None  # keep reading what it says while it stops
        returncode = process.wait(timeout=120)
    ended = time.monotonic()
    if ended - last > longest:
        longest, ended_by = ended - last, "(exit)"
    total = ended - started
    print(f"total {total:.1f} s, exit status {returncode}")
    print(f"longest silence {longest:.1f} s, ended by: {ended_by}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
