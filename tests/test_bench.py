"""The benchmarks keep running: each one's short form, as a smoke test (no timing asserted).

Figures are never asserted here (they depend on the machine); this only proves that every
command in ``bench/README.md`` still works and prints its tables, ratios included.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PostgresServer

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str, timeout: float = 180, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return done.stdout


def test_the_check_benchmark_runs() -> None:
    out = run_bench("bench.bench_check", "--quick")
    assert "2,000" in out and "(1.00 = linear)" in out


@pytest.mark.parametrize("module", ["bench.bench_store", "bench.bench_engine"])
def test_the_store_and_engine_benchmarks_run(module: str, tmp_path: Path) -> None:
    out = run_bench(module, "--dir", str(tmp_path), "--seconds", "0.3")
    assert "vs (a)" in out and "1.00" in out  # ratios to the in-process sqlite3 baseline


def test_the_crisis_benchmark_runs() -> None:
    out = run_bench("bench.bench_crisis", "--repeat", "1")
    assert "baseline: phrase list" in out and "ratio" in out


@pytest.mark.slow
def test_the_workers_benchmark_runs(tmp_path: Path, postgres_server: PostgresServer) -> None:
    env = {"REHEARSE_BENCH_POSTGRES_URL": postgres_server.url}
    out = run_bench("bench.bench_workers", "--quick", "--dir", str(tmp_path), env=env)
    assert "sqlite+webhook" in out and "postgresql" in out and "vs sqlite" in out


@pytest.mark.slow
def test_the_end_to_end_benchmark_runs(tmp_path: Path) -> None:
    out = run_bench("bench.bench_e2e", "--quick", "--dir", str(tmp_path))
    assert "echo" in out and "ours" in out and "vs echo" in out


@pytest.mark.slow
def test_the_end_to_end_benchmark_runs_only_the_chosen_runs(tmp_path: Path) -> None:
    out = run_bench("bench.bench_e2e", "--quick", "--runs", "shipped,1", "--dir", str(tmp_path))
    steps = [line.partition(" clients: ")[0].split() for line in out.splitlines()
             if " updates in " in line]
    assert steps == [["echo", "1"], ["ours", "1"], ["shipped", "100", "paced"]]
    assert "vs echo" in out and "shipped pacing, 100 paced clients" in out
    assert "memory of ours" not in out  # no idle run


@pytest.mark.parametrize(("args", "error"), [
    (["--runs", "1,ten"], "unknown run 'ten'"),
    (["--quick", "--runs", "10,100"], "--quick has no run 100"),
    (["--runs", "shipped,idle"], "idle measures the bot of the last run of ours"),
])
def test_the_end_to_end_benchmark_refuses_runs_it_cannot_do(args: list[str], error: str) -> None:
    done = subprocess.run([sys.executable, "-m", "bench.bench_e2e", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and error in done.stderr


def test_the_explore_benchmark_runs() -> None:
    out = run_bench("bench.bench_explore", "--quick")
    assert "events/cpu s" in out and "slowest script" in out and "Engine.handle alone" in out


def test_the_report_benchmark_runs(tmp_path: Path) -> None:
    out = run_bench("bench.bench_report", "--days", "7", "--clients", "3", "--repeat", "1",
                    "--dir", str(tmp_path))
    assert "(b) progress report" in out and "(c) caseload overview" in out and "vs (a)" in out
