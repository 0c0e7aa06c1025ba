"""How fast ``rehearse check --explore`` walks the shipped scripts.

Run ``python -m bench.bench_explore [--quick]``. Every runnable script in ``scripts/`` is
explored with the built-in configuration, best of three (``--quick``: the first two scripts,
once), and a table gives per script the distinct places walked, the engine events handled, the
paths, the wall and CPU time of the walk and the events per CPU second. A therapist runs the
walk on save, so a shipped script should take well under 2 s. As a yardstick, the last line
gives the rate of ``Engine.handle`` alone on one state, over and over (``/skip`` at a prompt):
the walk's events per second divided by it is the share of the walk's time the engine takes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bench.bench_engine import CONSENT, event_for, session_steps
from bot.app import build
from bot.config import load_config
from bot.engine import Command, Engine
from bot.explore import Exploration, explore

REPEATS = 3
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def best_of(repeats: int, run: Callable[[], Exploration]) -> tuple[Exploration, float, float]:
    """The fastest of ``repeats`` runs: its result, wall seconds and CPU seconds."""
    best: tuple[Exploration, float, float] | None = None
    for _ in range(repeats):
        cpu = time.process_time()
        result: Exploration = run()
        took = time.process_time() - cpu
        if best is None or result.seconds < best[1]:
            best = (result, result.seconds, took)
    assert best is not None
    return best


def engine_rate(engine: Engine, seconds: float) -> float:
    """Events per CPU second of ``Engine.handle`` alone: ``/skip`` at a prompt of first-steps
    (reached by ``bench.bench_engine``'s walk)."""
    runnable = sorted(sid for sid, s in engine.resources.scripts.items() if s.first_step)
    state = engine.new_state("bench")
    for step in CONSENT + session_steps(f"m{runnable.index('first-steps')}")[:7]:
        state = engine.handle(state, event_for(step, state), NOW).state
    events, cpu = 0, time.process_time()
    while time.process_time() - cpu < seconds:
        engine.handle(state, Command(name="skip"), NOW)
        events += 1
    return events / (time.process_time() - cpu)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two scripts, once each")
    args = parser.parse_args()
    loaded = build(load_config(None, {}))
    resources = loaded.engine.resources
    runnable = [s for s in loaded.scripts.values() if s.first_step is not None]
    if args.quick:
        runnable = runnable[:2]
    repeats = 1 if args.quick else REPEATS
    print(f"{'script':<26} {'states':>7} {'events':>7} {'paths':>9} {'wall s':>7} "
          f"{'cpu s':>6} {'events/cpu s':>12}")
    worst = 0.0
    for script in runnable:
        result, wall, cpu = best_of(repeats, lambda s=script: explore(s, resources))
        worst = max(worst, wall)
        print(f"{script.id:<26} {result.states:>7,} {result.transitions:>7,} "
              f"{result.paths:>9,} {wall:>7.2f} {cpu:>6.2f} {result.transitions / cpu:>12,.0f}")
    print(f"slowest script: {worst:.2f} s")
    print(f"Engine.handle alone: {engine_rate(loaded.engine, 0.3 if args.quick else 1.0):,.0f} "
          "events/cpu s")


if __name__ == "__main__":
    main()
