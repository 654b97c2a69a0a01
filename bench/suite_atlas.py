"""Benchmark suite "atlas": images per second of ``cv.atlas.build`` against its floor.

The default model (EfficientNet-Lite0) over crops of the six bundled photos, every one resized
to 224×224 so that all batches have one shape. In the same run:

1. the **floor**: a plain ``model.predict`` loop over the same batches that keeps nothing;
2. ``atlas.build`` with Dask's default local threads (k = 9);
3. the same build on a 2-worker ``LocalCluster`` (1 thread each), cluster start excluded;

over one convolution per stage (2,944 channels), each after a small warm-up build (tracing,
and on the cluster the model rebuilt on every worker). Then the store's size per channel, and
where the time of each build went (the ``timings`` the store records: map, reduce, crops,
write).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from report import Figure, SuiteResult
from timing import section

NAME = "atlas"
DESCRIPTION = (
    "atlas.build images/s: predict floor, local threads, 2-worker LocalCluster; store size"
)

K = 9
BATCH = 16
#: One convolution per stage, early to deep (2,944 channels): every convolution (~21,000
#: channels) takes minutes on a shared 2-core machine, nearly all of it cutting and writing
#: crops; the per-channel figures scale to any layer set (docs/atlas.md).
LAYERS = [
    "backbone/stem_conv",
    "backbone/block2a_expand_conv",
    "backbone/block3a_expand_conv",
    "backbone/block4a_expand_conv",
    "backbone/block5a_expand_conv",
    "backbone/block6a_expand_conv",
    "backbone/top_conv",
]


def dataset(count: int) -> np.ndarray:
    """``count`` 224×224 crops of the bundled photos (seeded): real pictures, one shape."""
    from PIL import Image

    import cnnviz_widgets as cv

    rng = np.random.default_rng(0)
    photos = [cv.sample_image(name) for name in cv.sample_image_names()]
    out = np.empty((count, 224, 224, 3), np.uint8)
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[top : top + side, left : left + side])
        out[i] = np.asarray(crop.resize((224, 224), Image.Resampling.BILINEAR))
    return out


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def _rate(count: int, seconds: float, name: str, note: str, extra: dict) -> Figure:
    return Figure(name, "img/s", value=count / seconds, n=count, note=note, extra=extra)


def run(quick: bool) -> SuiteResult:
    import cnnviz_widgets as cv

    start = time.perf_counter()
    count = 32 if quick else 96
    model = cv.load_default_model()
    images = dataset(count)
    work = Path(tempfile.mkdtemp(prefix="cnnviz-atlas-bench-"))
    figures: list[Figure] = []
    context: dict = {"images": count, "image_size": [224, 224], "k": K, "batch_size": BATCH}
    try:
        with section("floor: model.predict loop"):
            model.predict(images[:BATCH], verbose=0)  # warm-up
            began = time.perf_counter()
            for i in range(0, count, BATCH):
                model.predict(images[i : i + BATCH], verbose=0)
            floor = time.perf_counter() - began
        figures.append(_rate(count, floor, "floor: model.predict loop, keeps nothing",
                             "one forward pass per batch of 16", {"seconds": floor}))  # fmt: skip

        def build(tag: str, client=None, n: int = count):
            store = work / f"{tag}.zarr"
            began = time.perf_counter()
            atlas = cv.atlas.build(model, images[:n], LAYERS, k=K, store=store, client=client,
                                   batch_size=BATCH, progress=False)  # fmt: skip
            return atlas, time.perf_counter() - began

        with section("atlas.build, local threads"):
            build("warm-local", n=BATCH)
            atlas, seconds = build("local")
        timings = dict(atlas._attrs.get("timings", {}))
        channels = atlas.channel_count
        context.update({"layers": len(atlas.layers), "channels": channels})
        figures.append(_rate(count, seconds, "atlas.build, local threads (default)",
                             f"{len(atlas.layers)} conv layers, {channels} channels; "
                             f"{floor / seconds:.2f}× the floor's rate",
                             {"seconds": seconds, "timings": timings}))  # fmt: skip

        with section("atlas.build, 2-worker LocalCluster"):
            from distributed import Client, LocalCluster

            began = time.perf_counter()
            cluster = LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            )
            with cluster, Client(cluster) as client:
                started = time.perf_counter() - began
                build("warm-cluster", client, n=2 * BATCH)
                cluster_atlas, cluster_seconds = build("cluster", client)
        figures.append(_rate(count, cluster_seconds, "atlas.build, 2-worker LocalCluster",
                             f"cluster start {started:.1f} s not included; "
                             f"{floor / cluster_seconds:.2f}× the floor's rate",
                             {"seconds": cluster_seconds, "cluster_start": started,
                              "timings": cluster_atlas._attrs.get("timings", {})}))  # fmt: skip
        same = bool(np.array_equal(cluster_atlas.indices(atlas.layers[-1]),
                                   atlas.indices(atlas.layers[-1])))  # fmt: skip
        figures.append(Figure("cluster store's top-k equal the local store's", "bool",
                              value=float(same), n=1, passed=same,
                              target="equal", statistic="value", threshold=1.0))  # fmt: skip

        size = disk_bytes(work / "local.zarr")
        crops = sum(
            np.prod(atlas._group(layer)["crops"].shape[1:]) * atlas.channels(layer)
            for layer in atlas.layers
        )
        figures.append(Figure("store size per channel", "kB", value=size / channels / 1e3,
                              n=channels, note=f"{size / 1e6:.1f} MB on disk for {channels} "
                              f"channels; crops {crops / channels / 1e3:.1f} kB/channel raw",
                              extra={"bytes": size, "raw_crop_bytes": int(crops)}))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    context["cpu_affinity"] = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    )
    return SuiteResult(NAME, DESCRIPTION, figures, context, time.perf_counter() - start)
