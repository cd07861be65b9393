"""The detection benchmark over several seeds: how much its one-run figures move with the fold split.

Not a test: prints ONE JSON line. Runs ``benchmarks/detection.py`` once per seed (every other argument is
passed on) and reports, for the published recipe and labelgate, the mean, minimum and maximum of F1 and
precision@100 over the seeds (labelgate's also @300, and its review queue's @100 / @300 with the count and
precision of each kind of label issue), labelgate's F1 gain over the recipe in the same run, the proxy accuracies,
and in how many runs each of issue 3's targets held (F1 gain >= 0.05, precision@100 >= 0.80, auto gate's
proxy > raw proxy) and issue 14's (the queue's precision@100 >= 0.88). In real mode the seed moves the fold
splits (both methods); in synthetic mode it also draws the flipped labels and the held-out split.

    python benchmarks/detection_seeds.py --seeds 10 --data ../shared/data/politeness-wikipedia
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import detection


def _summary(values: list[float]) -> dict:
    return {
        "mean": round(sum(values) / len(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0 .. N-1")
    args, rest = ap.parse_known_args(argv)
    if "--seed" in rest:
        ap.error("pass --seeds N, not --seed")
    started = time.perf_counter()
    runs = []
    for seed in range(args.seeds):
        with contextlib.redirect_stdout(io.StringIO()):  # detection.main prints its own line
            result = detection.main([*rest, "--seed", str(seed)])
        runs.append(
            {
                "seed": seed,
                "recipe_f1": result["recipe"]["f1"],
                "labelgate_f1": result["labelgate"]["f1"],
                "f1_gain": result["f1_gain_vs_recipe"],
                "recipe_p100": result["recipe"]["precision_at_100"],
                "labelgate_p100": result["labelgate"]["precision_at_100"],
                "labelgate_p300": result["labelgate"]["precision_at_300"],
                "labelgate_queue_p100": result["labelgate"]["queue_precision_at_100"],
                "labelgate_queue_p300": result["labelgate"]["queue_precision_at_300"],
                "labelgate_mislabelled": result["labelgate"]["kinds"]["mislabelled"]["count"],
                "labelgate_mislabelled_precision": result["labelgate"]["kinds"]["mislabelled"]["precision"] or 0.0,
                "labelgate_ambiguous": result["labelgate"]["kinds"]["ambiguous"]["count"],
                "labelgate_ambiguous_precision": result["labelgate"]["kinds"]["ambiguous"]["precision"] or 0.0,
                "proxy_raw": result["proxy_accuracy"]["raw"],
                "proxy_auto_gate": result["proxy_accuracy"]["labelgate_auto_gate"],
                "folds": result["labelgate"]["folds"],
            }
        )
    out = {
        "benchmark": "detection_seeds",
        "seeds": args.seeds,
        "args": rest,
        **{key: _summary([r[key] for r in runs]) for key in runs[0] if key not in ("seed", "folds")},
        "targets_held": {
            "f1_gain_at_least_0.05": sum(r["f1_gain"] >= 0.05 for r in runs),
            "precision_at_100_at_least_0.80": sum(r["labelgate_p100"] >= 0.80 for r in runs),
            "queue_precision_at_100_at_least_0.88": sum(r["labelgate_queue_p100"] >= 0.88 for r in runs),
            "auto_gate_proxy_beats_raw": sum(r["proxy_auto_gate"] > r["proxy_raw"] for r in runs),
            "of": len(runs),
        },
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
