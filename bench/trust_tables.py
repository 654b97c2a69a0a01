"""Write the trust suite's figures into docs/trust.md, so the page shows what the JSON holds.

Usage (after ``python bench/run.py --suite trust``)::

    .venv/bin/python bench/trust_tables.py [bench/results/trust.json]

Replaces the text between the ``<!-- trust-figures:start -->`` and ``<!-- trust-figures:end -->``
markers of docs/trust.md with: the deletion/insertion table (each map next to its random map:
the layer's grid for a class-activation method, per pixel for a saliency method), the
randomisation table and the drill-down line. The prose around the markers is written by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "trust.md"
START, END = "<!-- trust-figures:start -->", "<!-- trust-figures:end -->"


def _rho(value: float | None) -> str:
    return "nan" if value is None or value != value else f"{value:.3f}"


def tables(result: dict[str, Any]) -> str:
    """The markdown for one trust.json."""
    context, env = result["context"], result["environment"]
    grids = {}
    for figure in result["figures"]:
        grid = (figure.get("extra") or {}).get("random_grid")
        if figure["name"].startswith("deletion AUC"):
            grids[figure["name"].split(" · ", 1)[1]] = grid
    lines = [
        f"EfficientNet-Lite0 (`cv.load_default_model()`), the `{context['image']}` photo, class "
        f"{context['class_index']} \"Egyptian cat\", blurred baseline, {context['plan']['steps']} "
        "steps; from `bench/results/trust.json` (`python bench/run.py --suite trust`, tables by "
        "`bench/trust_tables.py`).",
        "",
        "| method | deletion ↓ | random | insertion ↑ | random | random map "
        "| beats random on both |",
        "| --- | ---: | ---: | ---: | ---: | :---: | :---: |",
    ]
    for name, row in context["faithfulness"].items():
        good = (row["deletion"] < row["deletion_random"]
                and row["insertion"] > row["insertion_random"])  # fmt: skip
        grid = grids.get(row["label"])
        cells = "per pixel" if grid is None else f"{grid[0]}×{grid[1]} cells"
        lines.append(
            f"| {row['label']} (`{name}`) | {row['deletion']:.3f} | {row['deletion_random']:.3f} "
            f"| {row['insertion']:.3f} | {row['insertion_random']:.3f} | {cells} "
            f"| {'yes' if good else 'no'} |"
        )
    lines += [
        "",
        "Randomisation check (Spearman ρ with the original map, top block first; cascading):",
        "",
        "| method | blocks | ρ after top block | ρ after 2 | ρ after the last checked | flagged |",
        "| --- | ---: | ---: | ---: | ---: | :---: |",
    ]
    for name, row in context["randomization"].items():
        rho = row["correlations"]
        lines.append(
            f"| {row['label']} (`{name}`) | {len(rho)} ({row['blocks'][-1]}) | {_rho(rho[0])} "
            f"| {_rho(rho[1] if len(rho) > 1 else None)} | {_rho(rho[-1])} "
            f"| {'**yes**' if row['flagged'] else 'no'} |"
        )
    drill = next(f for f in result["figures"] if f["name"].startswith("drill-down"))
    floor = drill["references"][0]["median"] if drill.get("references") else None
    lines += [
        "",
        f"Drill-down: setting `cam.point` to a new spot after the map is shown takes "
        f"{drill['median']:.1f} ms median, {drill['p95']:.1f} ms p95 over {drill['n']} points "
        f"(target p95 ≤ 50 ms: {'PASS' if drill['passed'] else 'FAIL'})"
        + (f"; the bare numpy ranking is {floor:.2f} ms." if floor is not None else "."),
    ]
    paced = next((f for f in result["figures"] if f["name"].startswith("drill-down at")), None)
    if paced is not None:
        lines.append(
            f"At a person's pace ({paced['name'].split(': ', 1)[1]}): {paced['median']:.1f} ms "
            f"median, {paced['p95']:.1f} ms p95 over {paced['n']} points."
        )
    lines += [
        "",
        f"Measured {result['date']} on {env['cpu_count']} CPUs (load "
        f"{env['load_average_start'][0]:.1f} at the start), TensorFlow {env['tensorflow']}, "
        f"Keras {env['keras']}.",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    source = Path(argv[0]) if argv else ROOT / "bench" / "results" / "trust.json"
    result = json.loads(source.read_text(encoding="utf-8"))
    text = DOC.read_text(encoding="utf-8")
    if START not in text or END not in text:
        sys.exit(f"{DOC} has no {START} … {END} section")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{START}\n{tables(result)}\n{END}{tail}", encoding="utf-8")
    print(f"wrote the figures of {source} into {DOC}")


if __name__ == "__main__":
    main(sys.argv[1:])
