"""Soak run: thousands of seeded random CNNs (tests/model_generator.py), every view vs plain Keras.

Usage::

    .venv/bin/python bench/soak.py                 # 2,000 models (tens of minutes on 2 cores)
    .venv/bin/python bench/soak.py --models 300    # fewer
    make soak

Each model is drawn from its seed and checked by ``model_generator.check`` (every layer's
activations equal Keras' own computation for that call, Grad-CAM equal to a GradientTape
computation where the graph splits at a top-level layer, saliency finite); the explorers are
built for every 25th model. Failures are listed with the seed and the recipe that shows them,
so each can become a named regression test. Figures go to ``bench/results/soak.json``.
Not part of ``make bench``: it is a search for bugs, not a speed figure.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def _summary(args, done, seconds, failures, kinds, totals, started) -> dict:
    ordered = sorted(seconds)
    return {
        "models": done,
        "first_seed": args.first,
        "passed": done - len(failures),
        "failed": len(failures),
        "failures": failures,
        "model_kinds": dict(kinds),
        "compared": dict(totals),
        "seconds_total": round(time.perf_counter() - started, 1),
        "seconds_per_model_median": round(ordered[len(ordered) // 2], 3),
        "seconds_per_model_p95": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=2000, help="how many seeds (from 0)")
    parser.add_argument("--first", type=int, default=0, help="first seed")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = parser.parse_args(argv)

    import warnings

    import keras
    from model_generator import check, random_model

    warnings.filterwarnings("ignore")
    seconds: list[float] = []
    failures: list[dict] = []
    kinds: collections.Counter[str] = collections.Counter()
    totals: collections.Counter[str] = collections.Counter()
    started = time.perf_counter()
    for seed in range(args.first, args.first + args.models):
        t0 = time.perf_counter()
        drawn = None
        try:
            drawn = random_model(seed, keras)
            for word in ("sequential", "siamese", "sub×2", "shared×2", "[", "residual"):
                kinds[word] += any(word in step for step in drawn.recipe)
            totals.update(check(drawn, keras, explorers=seed % 25 == 0))
        except Exception as exc:  # every failure is recorded, the run goes on
            failures.append(
                {
                    "seed": seed,
                    "recipe": drawn.describe() if drawn is not None else "(not built)",
                    "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                    "where": traceback.format_exc().splitlines()[-3][:300],
                }
            )
        seconds.append(time.perf_counter() - t0)
        keras.backend.clear_session()
        done = seed - args.first + 1
        if done % 100 == 0 or done == args.models:
            # Written as the run goes, so a run stopped early still leaves its figures.
            result = _summary(args, done, seconds, failures, kinds, totals, started)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
            print(f"{done} models, {len(failures)} failures", flush=True)
    print(json.dumps({k: v for k, v in result.items() if k != "failures"}, indent=2))
    for failure in failures[:20]:
        print(f"FAIL seed {failure['seed']}: {failure['error']}\n    {failure['recipe']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
