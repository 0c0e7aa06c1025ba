"""``rehearse run --workers N``: N worker processes of one bot, on one PostgreSQL database.

Each worker is ``rehearse run`` in a process of its own, so that one crashing (or stuck in
a long garbage collection) leaves the others serving; they share updates, outbox and the
lead through the database (``_queue``). This process only supervises them: it restarts a
worker that exits (after 1, 2, 4 … seconds, at most 30), passes SIGTERM and SIGINT on to all
of them, and exits 0 once they stopped cleanly, or 1 when workers keep failing
(:data:`MAX_FAILURES` exits within :data:`FAILURE_WINDOW` seconds): it then stops the others,
so that systemd (``Restart=on-failure``) restarts the whole.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger(__name__)
MAX_FAILURES = 5
FAILURE_WINDOW = 60.0
#: Seconds the workers get to stop after SIGTERM (each stops within 10) before SIGKILL.
STOP_TIMEOUT = 20.0
_BACKOFF_LIMIT = 30.0


@dataclass
class _Slot:
    """One worker's place: its current process and when it may be started again."""

    number: int
    process: subprocess.Popen[bytes] | None = None
    start_at: float = 0.0
    started: float = 0.0
    failures: int = 0


def run_workers(count: int, arguments: Sequence[str]) -> int:
    """Run `count` workers (``python -m bot run ARGUMENTS``) until SIGTERM or SIGINT.

    Returns:
        0 after a clean stop; 1 when workers kept failing.
    """
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    slots = [_Slot(number) for number in range(count)]
    exits: list[float] = []
    failed = False
    try:
        while not stopping:
            now = time.monotonic()
            for slot in slots:
                if slot.process is None and now >= slot.start_at:
                    slot.process = subprocess.Popen(
                        [sys.executable, "-m", "bot", "run", *arguments])
                    slot.started = now
                    print(f"rehearse run: worker {slot.number + 1} of {count} started "
                          f"(pid {slot.process.pid})", file=sys.stderr)
                    continue
                code = None if slot.process is None else slot.process.poll()
                if code is None:
                    continue
                exits[:] = [at for at in exits if now - at < FAILURE_WINDOW] + [now]
                slot.failures = 1 if now - slot.started > FAILURE_WINDOW else slot.failures + 1
                delay = min(_BACKOFF_LIMIT, 2.0 ** (slot.failures - 1))
                print(f"rehearse run: worker {slot.number + 1} exited with {code}; starting "
                      f"it again in {delay:.0f} s", file=sys.stderr)
                slot.process, slot.start_at = None, now + delay
            if len(exits) >= MAX_FAILURES:
                print(f"rehearse run: workers exited {len(exits)} times within "
                      f"{FAILURE_WINDOW:.0f} s; stopping", file=sys.stderr)
                failed = True
                break
            time.sleep(0.2)
    finally:
        codes = _stop_all([slot.process for slot in slots if slot.process is not None])
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failed or any(codes) else 0


def _stop_all(processes: Sequence[subprocess.Popen[bytes]]) -> list[int]:
    """SIGTERM every worker, wait for them, SIGKILL those that do not stop in time."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    return codes
