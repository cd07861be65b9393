"""Start-up share of a cold ``labelgate run``: wall time outside the stages' own work.

    python benchmarks/startup.py [--input data/sample.csv] [--repeats 3] [--repo PATH] [--warm-start 0|1]

Each repeat runs ``labelgate run INPUT --db NEW --out NEW --json`` in a fresh process with a fresh database and a
fresh ``PREFECT_HOME`` (as a new user has; the ephemeral API then creates its database), then reads the run's
figures with ``labelgate runs --json``. ``--repo`` runs another checkout's code (``PYTHONPATH``), e.g. to compare
with the main branch; ``--warm-start 0`` sets ``LABELGATE_WARM_START=0``.

Prints ONE JSON line: per repeat the command's wall seconds, the CPU seconds of the process and its children (the
ephemeral API server included), the stages' seconds (``seconds_by_stage``, parts not counted twice), the share
outside them (``outside = wall - stages``), ``startup_seconds`` (process start to the first stage, as the run
recorded it; None where the code predates it) and the 1-minute load average before and after; then the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0]) if Path("/proc/loadavg").exists() else float("nan")


def one_run(repo: Path, input_path: Path, *, warm_start: str | None) -> dict:
    """One cold run in a fresh process; its figures."""
    work = Path(tempfile.mkdtemp(prefix="labelgate-startup-bench-"))
    env = {**os.environ, "PYTHONPATH": str(repo), "PREFECT_HOME": str(work / "prefect")}
    env.pop("PREFECT_API_URL", None)
    if warm_start is not None:
        env["LABELGATE_WARM_START"] = warm_start
    db = work / "runs.duckdb"
    exe = [sys.executable, "-m", "labelgate.cli"]
    load_before = _load()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(
        [*exe, "run", str(input_path), "--db", str(db), "--out", str(work / "out"), "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=work,
    )
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"labelgate run failed ({done.returncode}): {done.stderr[-2000:]}")
    shown = subprocess.run([*exe, "runs", "--db", str(db), "--json"], env=env, capture_output=True, text=True)
    run = json.loads(shown.stdout)[0]
    by_stage = run.get("seconds_by_stage") or {}
    stages = sum(v for k, v in by_stage.items() if "." not in k)
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        "stages_s": round(stages, 2),
        "outside_s": round(wall - stages, 2),
        "startup_s": run.get("startup_seconds"),
        "validate_s": by_stage.get("validate"),
        "embed_s": by_stage.get("embed"),
        "load_before": load_before,
        "load_after": _load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(REPO / "data" / "sample.csv"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repo", default=str(REPO), help="checkout whose code runs (PYTHONPATH)")
    parser.add_argument("--warm-start", choices=["0", "1"], default=None, help="set LABELGATE_WARM_START")
    args = parser.parse_args()
    runs = [one_run(Path(args.repo), Path(args.input), warm_start=args.warm_start) for _ in range(args.repeats)]
    medians = {
        key: statistics.median(r[key] for r in runs)
        for key in ("wall_s", "cpu_s", "stages_s", "outside_s", "startup_s")
        if all(r[key] is not None for r in runs)
    }
    print(json.dumps({"input": args.input, "repo": args.repo, "runs": runs, "median": medians}))


if __name__ == "__main__":
    main()
