"""The progress printer of scripts/: harness.images.progress (live status line on a
terminal, plain lines elsewhere, JSON events for a program), re-exported here."""

from harness.images.progress import (
    Finished,
    Mode,
    Progress,
    Step,
    default_mode,
    duration,
    run_streamed,
)

__all__ = ["Finished", "Mode", "Progress", "Step", "default_mode", "duration", "run_streamed"]
