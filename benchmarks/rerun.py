"""Cold vs warm wall time of an unchanged re-run, in one process, as a ratio.

    python benchmarks/rerun.py [--input data/sample.csv] [--gate auto]

Runs the ``curate`` flow twice on the same file with the same settings into a fresh database: the cold run
embeds and detects; the warm run finds every vector cached and reuses the cold run's detection (same rows,
settings and model: ``detection_reused_from``). Prefect's ephemeral API is started before either is timed (a
trivial flow run), so both figures are the flow's own wall time; the process start is reported apart
(``startup_s``). Prints ONE JSON line: cold_s, warm_s, ratio (warm / cold), the warm run's texts embedded and
detection reused from, and the seconds of each stage of the warm run when Prefect recorded them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_HOME = tempfile.mkdtemp(prefix="labelgate-rerun-prefect-")
for key, value in {
    "PREFECT_HOME": _HOME,
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "GX_ANALYTICS_ENABLED": "false",
    "TOKENIZERS_PARALLELISM": "false",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
    "LABELGATE_PROGRESS": "0",
}.items():
    os.environ.setdefault(key, value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default=str(REPO / "data" / "sample.csv"), help="Labelled file to curate twice.")
    parser.add_argument("--gate", default="auto", choices=["auto", "none"], help="Gate of both runs.")
    parser.add_argument("--workdir", default=None, help="Folder for the database and exports (default: temporary).")
    args = parser.parse_args(argv)

    from prefect import flow

    from labelgate.config import CurateParams
    from labelgate.flows.curate import curate

    @flow(name="rerun-benchmark-warmup")
    def warmup() -> int:
        return 1

    warmup()  # starts the ephemeral Prefect API: neither timed run pays for it
    startup = time.perf_counter() - STARTED
    work = Path(args.workdir or tempfile.mkdtemp(prefix="labelgate-rerun-"))
    db, out = str(work / "rerun.duckdb"), str(work / "exports")
    params = CurateParams(gate=args.gate)

    t0 = time.perf_counter()
    cold = curate(args.input, db_path=db, out_dir=out, params=params)
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = curate(args.input, db_path=db, out_dir=out, params=params)
    warm_s = time.perf_counter() - t0
    result = {
        "input": args.input,
        "rows_in": cold["rows_in"],
        "startup_s": round(startup, 2),
        "cold_s": round(cold_s, 2),
        "warm_s": round(warm_s, 2),
        "ratio": round(warm_s / cold_s, 4),
        "target_ratio": 0.10,
        "warm_texts_embedded": warm.get("texts_embedded"),
        "warm_detection_reused_from": warm.get("detection_reused_from"),
        "cold_run": cold["run_id"],
        "warm_run": warm["run_id"],
        "same_exported_rows": (cold["exported_train"], cold["exported_val"])
        == (warm["exported_train"], warm["exported_val"]),
    }
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
