"""Resident memory of the quick start, step by step, in a fresh Python (mybinder.org gives 1 GiB).

Usage::

    .venv/bin/python bench/memory.py            # every step, filter ascent at its real length
    .venv/bin/python bench/memory.py --steps 16 # filter ascent capped (CNNVIZ_MAX_STEPS), faster
    .venv/bin/python bench/memory.py --json     # one JSON line instead of the table

The script re-runs itself in a child process, so the figures are the quick start's alone (a
parent that imported TensorFlow first would inflate them). The child follows
``notebooks/00_quickstart.ipynb`` and then opens every tab of the Explorer as a user would,
waiting for each tab's first picture. After each step it reads ``VmRSS`` (resident now) and
``VmHWM`` (the step's own peak: it is reset after each step) from ``/proc/self/status``, split
into anonymous memory and mapped files (TensorFlow's libraries), and what each store holds: the
one cache budget (feature and class maps, ascent images), the numpy arrays alive in Python, the
model's weights and the functions traced for it.

``tests/test_first_run.py`` runs the same steps (:data:`STEPS`) and asserts the peak.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The quick start, one step a line: a step's name, then the code the child runs for it. Every
#: tab waits for its picture; the Explorer's Summary waits for its pass through every layer.
STEPS: list[tuple[str, str]] = [
    ("import", "import cnnviz_widgets as cv; import ipywidgets"),
    ("tensorflow", "from cnnviz_widgets.engine import backend; backend.keras()"),
    ("model", "model = cv.load_default_model(); image = cv.sample_image('chelsea')"),
    ("first_picture", "ex = cv.ActivationExplorer(model, image); assert ex.png[:4] == b'\\x89PNG'"),
    ("grid", "ex.layer = 'backbone/block2a_expand_activation'; ex.mode = 'grid'; ex.png"),
    ("explorer", "full = cv.Explorer(model, image); full._repr_mimebundle_()"),
    ("detail_tab", "full.activations.tabs.selected_index = 1"),
    ("layers_tab", "full.activations.tabs.selected_index = 2"),  # the Activations' own Summary
    ("summary_tab", "full.tabs.selected_index = 3; assert full.wait(120)"),
    ("cam_tab", "full.tabs.selected_index = 2; assert full.cam.wait(120)"),
    ("filters_tab", "full.tabs.selected_index = 1; assert full.filters.wait(900)"),
]

_PROBE = r"""
import gc, json, sys, time
import numpy as np

def _status(field):
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith(field + ":"))
    return int(line.split()[1]) / 1024  # kB -> MiB

def _numpy_mib():
    # Every array reachable from a container, counted once, by the array that owns its memory
    # (a view leads to it through .base; an array over a TensorFlow buffer is its own owner).
    owners = {}
    for obj in gc.get_objects():
        if isinstance(obj, dict):
            values = obj.values()
        elif isinstance(obj, (list, tuple)):
            values = obj
        else:
            continue
        for value in values:
            if isinstance(value, np.ndarray):
                while isinstance(value.base, np.ndarray):
                    value = value.base
                owners[id(value)] = value.nbytes
    return sum(owners.values()) / 2**20

def _stores():
    # Read through the modules' own globals, so that measuring makes no cache that the quick
    # start did not make itself.
    out = {}
    cache_module = sys.modules.get("cnnviz_widgets.cache")
    if cache_module is not None and getattr(cache_module, "_budget", None) is not None:
        out["cached_mib"] = round(cache_module._budget.nbytes / 2**20, 1)
        out["budget_mib"] = round(cache_module._budget.max_bytes / 2**20, 1)
    if cache_module is not None and cache_module._shared is not None:
        out["maps_mib"] = round(cache_module._shared.nbytes / 2**20, 1)
    results = sys.modules.get("cnnviz_widgets.ascent.results")
    if results is not None and results._cache is not None:
        out["ascent_mib"] = round(results._cache.nbytes / 2**20, 1)
    model = globals().get("model")
    if model is not None:
        out["weights_mib"] = round(sum(int(np.prod(w.shape)) * 4 for w in model.weights) / 2**20, 1)
        adapters = model.__dict__.get("_cnnviz_adapters", {}).values()
        out["functions"] = sum(len(a.compiled_keys) for a in adapters)
    return out

def _reset_peak():
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so each step reports its own peak.
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass  # then each step's peak is the peak so far, an upper bound

_start = time.perf_counter()
_peak = 0.0
def _mark(name):
    global _peak
    backend = sys.modules.get("cnnviz_widgets.engine.backend")
    if backend is not None:
        backend.wait_for_traces(600)  # a step ends when its graphs are in place
    gc.collect()
    step_peak = _status("VmHWM")
    _peak = max(_peak, step_peak)
    row = {"step": name, "s": round(time.perf_counter() - _start, 1),
           "rss_mib": round(_status("VmRSS"), 1), "step_peak_mib": round(step_peak, 1),
           "peak_mib": round(_peak, 1),
           "anon_mib": round(_status("RssAnon"), 1), "file_mib": round(_status("RssFile"), 1),
           "numpy_mib": round(_numpy_mib(), 1), **_stores()}
    print("STEP " + json.dumps(row), flush=True)
    _reset_peak()
"""


def child_script(steps: list[tuple[str, str]] = STEPS) -> str:
    """The code the fresh process runs: the probe, then each step followed by its mark."""
    body = [_PROBE]
    for name, code in steps:
        body.append(code)
        body.append(f"_mark({name!r})")
    return "\n".join(body) + "\n"


def run(*, max_steps: int | None = None, cache_dir: str | None = None, timeout: float = 1800):
    """Run the quick start in a fresh Python; return one dict per step (figures in MiB)."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("CNNVIZ_FRONTEND", "full")
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH")] if p)
    if max_steps is not None:
        env["CNNVIZ_MAX_STEPS"] = str(max_steps)
    with tempfile.TemporaryDirectory() as scratch:
        # A cold disk cache: the filter tab computes its images, as on a first Binder visit.
        env["CNNVIZ_CACHE_DIR"] = cache_dir or str(Path(scratch) / "cache")
        done = subprocess.run(
            [sys.executable, "-c", child_script()], env=env, capture_output=True, text=True,
            timeout=timeout, cwd=scratch,
        )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the quick start failed:\n{done.stderr[-4000:]}")
    rows = [json.loads(x[5:]) for x in done.stdout.splitlines() if x.startswith("STEP ")]
    return rows, done.stderr


#: Table columns: (row field, heading). Figures in MiB but the seconds and the function count.
COLUMNS = [
    ("s", "s"),
    ("rss_mib", "resident"),
    ("step_peak_mib", "step peak"),
    ("peak_mib", "peak"),
    ("anon_mib", "anon"),
    ("file_mib", "file"),
    ("numpy_mib", "numpy"),
    ("cached_mib", "cached"),
    ("maps_mib", "maps"),
    ("ascent_mib", "ascent"),
    ("budget_mib", "budget"),
    ("weights_mib", "weights"),
    ("functions", "functions"),
]


def table(rows: list[dict]) -> str:
    """The figures as an aligned text table (``-``: not made yet)."""
    lines = [f"{'step':<14}" + "".join(f"{title:>10}" for _, title in COLUMNS)]
    for row in rows:
        cells = "".join(f"{row.get(field, '-'):>10}" for field, _ in COLUMNS)
        lines.append(f"{row['step']:<14}{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="cap filter ascent's steps")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    rows, _ = run(max_steps=args.steps)
    print(json.dumps(rows) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
