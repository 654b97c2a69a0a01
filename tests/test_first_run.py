"""The quick start as a new user meets it: time to the first picture, and memory within Binder's.

A fresh Python runs ``bench/memory.py``'s steps: the quick-start notebook's code (import,
default model, ActivationExplorer, the grid, the tabbed Explorer), then every tab of the
Explorer opened as a user would, each waited for until its first picture is drawn. After each
step ``/proc/self/status`` gives its resident memory and the step's own peak (VmHWM, reset after
each step). mybinder.org guarantees 1 GiB: the whole session, every tab open, must stay within
it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.default_model

REPO_ROOT = Path(__file__).resolve().parents[1]
LIMIT_MIB = 1024


def _bench_memory():
    """``bench/memory.py`` (the bench folder is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_memory", REPO_ROOT / "bench" / "memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_with_every_tab_open_stays_within_binders_memory(tmp_path):
    memory = _bench_memory()
    # Filter ascent capped at 16 steps: its memory does not grow with the steps (the full 256
    # peak within a MiB of it in bench/memory.py), only its time does.
    rows, stderr = memory.run(max_steps=16, cache_dir=str(tmp_path / "cache"), timeout=900)
    print("\nfirst run, every tab: seconds since start, MiB resident, the step's peak, cached:")
    print(memory.table(rows))
    steps = {row["step"]: row for row in rows}
    assert list(steps) == [name for name, _ in memory.STEPS]  # every step ran, in order
    # The whole session, every tab open, within Binder's guarantee (the peak of any step).
    worst = max(rows, key=lambda row: row["step_peak_mib"])
    assert worst["step_peak_mib"] <= LIMIT_MIB, worst
    assert steps["filters_tab"]["peak_mib"] <= LIMIT_MIB
    # Everything the caches keep is within the one budget, shared by feature maps and images.
    final = steps["filters_tab"]
    assert final["maps_mib"] + final["ascent_mib"] <= final["cached_mib"] <= final["budget_mib"]
    assert final["ascent_mib"] > 0  # the Filters tab's images are kept on that budget too
    assert steps["import"]["s"] < steps["model"]["s"] < steps["first_picture"]["s"]
    # Nothing of TensorFlow's C++ start-up reached the user's stderr.
    assert "cpu_feature_guard" not in stderr and "absl::InitializeLog" not in stderr
