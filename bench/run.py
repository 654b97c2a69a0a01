"""Run the cnnviz_widgets benchmark suites; print a table and save the figures as JSON.

Usage::

    .venv/bin/python bench/run.py                      # every suite (bench/suite_*.py)
    .venv/bin/python bench/run.py --suite activations  # one suite (repeatable)
    .venv/bin/python bench/run.py --quick              # smoke run (or CNNVIZ_BENCH_QUICK=1)

Each suite is a module ``bench/suite_<name>.py`` with ``NAME``, ``DESCRIPTION`` and
``run(quick: bool) -> report.SuiteResult``; adding a file adds a suite. Results go to
``bench/results/<name>.json`` (``<name>.quick.json`` for a quick run, so a smoke test never
overwrites real figures). The exit status is 0 unless ``--strict`` is given and a target
failed.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DEFAULT_RESULTS = BENCH_DIR / "results"
QUICK_ENV = "CNNVIZ_BENCH_QUICK"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
for _path in (ROOT, BENCH_DIR):  # the package from this checkout; the bench helpers
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def available_suites() -> list[str]:
    """Names of the suites present: ``bench/suite_<name>.py``, sorted."""
    return sorted(p.stem.removeprefix("suite_") for p in BENCH_DIR.glob("suite_*.py"))


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def environment() -> dict[str, Any]:
    """Where the figures were measured: machine, library versions, date, load."""
    import keras
    import matplotlib
    import numpy
    import psutil
    import tensorflow as tf

    import cnnviz_widgets

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_total_mb": psutil.virtual_memory().total / 1e6,
        "load_average_start": list(os.getloadavg()),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "numpy": numpy.__version__,
        "matplotlib": matplotlib.__version__,
        "cnnviz_widgets": cnnviz_widgets.__version__,
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_tracked_changes": None if status is None else bool(status),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (a ``.tmp`` file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    temporary.replace(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    suites = available_suites()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--suite",
        action="append",
        choices=suites,
        help=f"suite to run (repeatable); default: all ({', '.join(suites)})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get(QUICK_ENV, "") not in ("", "0"),
        help=f"few repeats, for a smoke run (also: {QUICK_ENV}=1)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=DEFAULT_RESULTS,
        help=f"where the JSON files go (default: {DEFAULT_RESULTS.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a target fails"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen suites, print their tables and the summary, write the JSON files."""
    from report import format_summary, format_table

    args = parse_args(argv)
    names = args.suite or available_suites()
    start = time.perf_counter()
    print(f"cnnviz_widgets benchmarks: {', '.join(names)}{' (quick)' if args.quick else ''}")
    env = environment()
    print(
        f"  {env['date']} · {env['cpu_count']} CPUs (affinity {env['cpu_affinity']}) · "
        f"TF {env['tensorflow']} · Keras {env['keras']} · Python {env['python']} · "
        f"load {env['load_average_start'][0]:.2f}",
        flush=True,
    )
    results = []
    for name in names:
        module = importlib.import_module(f"suite_{name}")
        print(f"running suite {name!r} …", file=sys.stderr, flush=True)
        result = module.run(quick=args.quick)
        results.append(result)
        print()
        print(format_table(result), flush=True)
    env["load_average_end"] = list(os.getloadavg())
    env["total_seconds"] = time.perf_counter() - start

    print()
    print(format_summary(results))
    busiest = max(env["load_average_start"][0], env["load_average_end"][0])
    if busiest > 0.5 * (env["cpu_affinity"] or env["cpu_count"] or 1):
        print(
            f"  note: the machine was busy (1-min load average up to {busiest:.1f} on "
            f"{env['cpu_affinity'] or env['cpu_count']} CPUs): figures, p95s above all, are noisy"
        )
    for result in results:
        judged = [f for f in result.figures if f.passed is not None]
        path = args.results_dir / f"{result.suite}{'.quick' if args.quick else ''}.json"
        write_json(
            path,
            {
                "suite": result.suite,
                "description": result.description,
                "quick": args.quick,
                "date": env["date"],
                "seconds": result.seconds,
                "environment": env,
                "context": result.context,
                "figures": [f.as_json() for f in result.figures],
                "summary": {
                    "targets": len(judged),
                    "passed": sum(bool(f.passed) for f in judged),
                    "failed": sum(not f.passed for f in judged),
                    "all_passed": all(f.passed for f in judged),
                },
            },
        )
        print(f"wrote {path}")
    print(f"total {env['total_seconds']:.0f} s")
    failed = any(f.passed is False for r in results for f in r.figures)
    return 1 if (failed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
