"""Named points where a test can stop a real run: `HARE_FAILPOINT=<name>` makes the first process that
reaches `failpoint(name)` write `<HARE_FAILPOINT_DIR>/<name>` and wait there until a signal ends it.

The fault-injection suite uses them to send SIGKILL, SIGTERM or SIGINT at a known place inside each
kind of step (the signal is real; only the timing is arranged). Unset, a failpoint costs one
environment lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV = "HARE_FAILPOINT"
DIR_ENV = "HARE_FAILPOINT_DIR"


def failpoint(name: str) -> None:
    if os.environ.get(ENV) != name:
        return
    marker = Path(os.environ.get(DIR_ENV) or ".") / name
    if marker.exists():  # reached once already (an earlier process): let reruns pass
        return
    marker.write_text(str(os.getpid()))
    while True:  # time.sleep returns to Python between naps, so signal handlers run
        time.sleep(0.1)
