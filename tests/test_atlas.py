"""The dataset atlas: exact top-k against brute force, receptive fields, sources, resuming, errors.

Tiny seeded models and seeded random images; Dask's local threads (the cluster runs are in
``test_atlas_cluster``-marked tests at the end, ``-m atlas_cluster``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("dask")
pytest.importorskip("zarr")

import cnnviz_widgets as cv
from cnnviz_widgets.atlas import receptive
from cnnviz_widgets.atlas import worker as atlas_worker
from cnnviz_widgets.atlas.store import open_group
from cnnviz_widgets.engine.adapter import adapter_for
from cnnviz_widgets.errors import Cancelled, CnnVizError, LayerError

K = 4
LAYERS = ["conv1", "pool1", "conv2"]


@pytest.fixture(scope="module")
def model():
    """16×16×3 → conv1(4, same, relu) → pool1 → conv2(6, valid, relu) → gap → dense(3).

    conv1's channel 0 is the constant 1 (zero kernel, bias 1) and channel 1 is dead (bias
    -1000): every image ties on them, which pins down the tie rule.
    """
    import keras

    keras.utils.set_random_seed(11)
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(6, 3, padding="valid", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    built = keras.Model(inputs, outputs, name="atlas_tiny")
    kernel, bias = built.get_layer("conv1").get_weights()
    kernel[..., :2] = 0.0
    bias[:2] = (1.0, -1000.0)
    built.get_layer("conv1").set_weights([kernel / 255.0, bias])
    return built


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(7).integers(0, 256, (23, 16, 16, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def reference(model, images, tmp_path_factory):
    """One undisturbed local build (batch 5: four full batches and a partial one)."""
    store = tmp_path_factory.mktemp("atlas") / "reference.zarr"
    return cv.atlas.build(model, images, LAYERS, k=K, store=store, batch_size=5, progress=False)


def brute_force(model, images, layer, k):
    """Top-k by a plain numpy pass over every image's full feature map."""
    maps = np.stack([cv.activations(model, image, layer) for image in images])  # (N, H, W, C)
    n, h, w, c = maps.shape
    flat = maps.reshape(n, h * w, c)
    score = flat.max(axis=1)
    position = flat.argmax(axis=1)  # first occurrence: row-major
    order = np.stack([np.lexsort((np.arange(n), -score[:, ch]))[:k] for ch in range(c)])
    values = maps.reshape(-1, c).astype(np.float64)
    return {
        "index": order,
        "score": np.take_along_axis(score.T, order, 1),
        "y": np.take_along_axis(position.T // w, order, 1),
        "x": np.take_along_axis(position.T % w, order, 1),
        "mean": values.mean(axis=0),
        "std": values.std(axis=0),
        "zero_fraction": (values == 0).mean(axis=0),
        "cells": n * h * w,
    }


def assert_same_store(a, b):
    """Every final array equal (NaN equal to NaN) and the same attributes but timings."""
    ga, gb = open_group(a.store), open_group(b.store)
    attrs_a, attrs_b = dict(ga.attrs), dict(gb.attrs)
    attrs_a.pop("timings", None), attrs_b.pop("timings", None)
    assert attrs_a == attrs_b
    assert "parts" not in ga and "parts" not in gb
    for entry in attrs_a["layers"]:
        la, lb = ga["layers"][entry["key"]], gb["layers"][entry["key"]]
        names = sorted(la.array_keys())
        assert names == sorted(lb.array_keys())
        for name in names:
            np.testing.assert_array_equal(la[name][...], lb[name][...], err_msg=name)


# ------------------------------------------------------------------------------ exact results
@pytest.mark.parametrize("layer", LAYERS)
def test_top_k_equals_brute_force_numpy(model, images, reference, layer):
    want = brute_force(model, images, layer, K)
    np.testing.assert_array_equal(reference.indices(layer), want["index"])
    np.testing.assert_allclose(reference.scores(layer), want["score"], rtol=1e-5, atol=1e-5)
    for channel in range(reference.channels(layer)):
        records = reference.top(layer, channel)
        assert [r.rank for r in records] == list(range(K))
        assert [r.index for r in records] == want["index"][channel].tolist()
        assert [(r.y, r.x) for r in records] == list(
            zip(want["y"][channel].tolist(), want["x"][channel].tolist(), strict=True)
        )
        assert all(r.path is None for r in records)  # an array source has no files
    stats = reference.stats(layer)
    np.testing.assert_allclose(stats["mean"], want["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["std"], want["std"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        stats["zero_fraction"], want["zero_fraction"], atol=1.01 / want["cells"]
    )


def test_ties_go_to_the_lower_image_index_at_the_first_cell(reference):
    # conv1 channel 0 is 1 everywhere in every image, channel 1 is 0 everywhere.
    for channel, score in [(0, 1.0), (1, 0.0)]:
        records = reference.top("conv1", channel)
        assert [r.index for r in records] == [0, 1, 2, 3]
        assert {(r.y, r.x) for r in records} == {(0, 0)}
        assert [r.score for r in records] == [score] * K
    stats = reference.stats("conv1")
    np.testing.assert_array_equal(stats["mean"][:2], [1.0, 0.0])
    np.testing.assert_array_equal(stats["std"][:2], [0.0, 0.0])
    np.testing.assert_array_equal(stats["zero_fraction"][:2], [0.0, 1.0])


def test_k_larger_than_the_images_leaves_empty_slots(model, images, tmp_path):
    atlas = cv.atlas.build(
        model, images[:3], ["conv2"], k=5, store=tmp_path / "a.zarr", progress=False
    )
    assert atlas.indices("conv2").shape == (6, 5)
    assert (atlas.indices("conv2")[:, 3:] == -1).all()
    assert np.isnan(atlas.scores("conv2")[:, 3:]).all()
    assert len(atlas.top("conv2", 0)) == 3 and atlas.crops("conv2", 0).shape[0] == 3


# ------------------------------------------------------------------------------ receptive fields
def test_receptive_fields_follow_the_layer_arithmetic(model):
    fields = receptive.receptive_fields(adapter_for(model), LAYERS, (16, 16))
    assert (fields["conv1"].size, fields["conv1"].jump, fields["conv1"].start) == (
        (3.0, 3.0),
        (1.0, 1.0),
        (-1.0, -1.0),
    )
    assert (fields["pool1"].size, fields["pool1"].jump) == ((4.0, 4.0), (2.0, 2.0))
    assert (fields["conv2"].size, fields["conv2"].jump, fields["conv2"].map_size) == (
        (8.0, 8.0),
        (2.0, 2.0),
        (6, 6),
    )
    assert fields["conv2"].window(2, 3) == (3, 5, 11, 13)


def test_a_unit_changes_only_with_pixels_inside_its_receptive_field(model, images):
    field = receptive.receptive_fields(adapter_for(model), ["conv2"], (16, 16))["conv2"]
    top, left, bottom, right = field.window(2, 3)
    base = images[0].astype(np.float32)
    unit = cv.activations(model, base, "conv2")[2, 3]
    inside, outside = base.copy(), base.copy()
    inside[top:bottom, left:right] = 255 - inside[top:bottom, left:right]
    outside[top - 1, :] = 255 - outside[top - 1, :]
    outside[:, right] = 255 - outside[:, right]
    np.testing.assert_array_equal(cv.activations(model, outside, "conv2")[2, 3], unit)
    assert not np.array_equal(cv.activations(model, inside, "conv2")[2, 3], unit)


def test_crops_are_the_receptive_field_of_the_maximum(model, images, reference):
    assert reference.layer_info("conv1")["crop_shape"] == [3, 3]
    assert reference.layer_info("conv2")["receptive_field"] == {
        "size": [8.0, 8.0],
        "jump": [2.0, 2.0],
    }
    for layer in ("conv1", "conv2"):
        crops = reference.crops(layer, 2)
        for record, crop in zip(reference.top(layer, 2), crops, strict=True):
            top, left, bottom, right = record.box
            np.testing.assert_array_equal(crop, images[record.index][top:bottom, left:right])
            # The window holds the maximum's cell: cell y sees rows from y·jump - 1 on.
            jump = 1 if layer == "conv1" else 2
            assert top <= max(record.y * jump - 1, 0) < bottom


# ------------------------------------------------------------------------------ sources
def _save_pngs(folder, images):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"img_{i:03d}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths


def test_every_kind_of_source_gives_the_same_atlas(model, images, reference, tmp_path):
    import tensorflow as tf

    paths = _save_pngs(tmp_path / "photos", images)
    sources = {
        "folder": tmp_path / "photos",
        "paths": paths,
        "list": list(images),
        "function": lambda: (image for image in images),
        "tf.data": tf.data.Dataset.from_tensor_slices((images, np.zeros(len(images)))).batch(7),
    }
    for name, source in sources.items():
        atlas = cv.atlas.build(
            model, source, LAYERS, k=K, store=tmp_path / f"{name}.zarr", batch_size=5,
            progress=False,
        )  # fmt: skip
        for layer in LAYERS:
            np.testing.assert_array_equal(atlas.indices(layer), reference.indices(layer), name)
            np.testing.assert_array_equal(atlas.crops(layer, 3), reference.crops(layer, 3), name)
        assert atlas.images == {"count": 23, "read": 23, "skipped": []}
    assert atlas.path(0) is None
    by_folder = cv.atlas.open(tmp_path / "folder.zarr")
    assert [r.path for r in by_folder.top("conv2", 0)] == [
        paths[i] for i in reference.indices("conv2")[0]
    ]


def test_a_one_shot_generator_gives_records_without_crops(model, images, reference, tmp_path):
    with pytest.warns(UserWarning, match="one-shot iterator.*no crops"):
        atlas = cv.atlas.build(
            model, (image for image in images), ["conv2"], k=K, store=tmp_path / "g.zarr",
            batch_size=5, progress=False,
        )  # fmt: skip
    np.testing.assert_array_equal(atlas.indices("conv2"), reference.indices("conv2"))
    assert not atlas.has_crops
    with pytest.raises(CnnVizError, match="no crops"):
        atlas.crops("conv2", 0)


def test_unreadable_files_are_skipped_and_counted(model, images, tmp_path):
    folder = tmp_path / "photos"
    _save_pngs(folder, images[:6])
    (folder / "img_002.png").write_bytes(b"not a png at all")
    (folder / "notes.txt").write_text("ignored: not an image name")
    with pytest.warns(UserWarning, match=r"Skipped 1 of 6 images .*\(indices \[2\]\)"):
        atlas = cv.atlas.build(model, folder, ["conv2"], k=3, store=tmp_path / "a.zarr",
                               progress=False)  # fmt: skip
    assert atlas.images == {"count": 6, "read": 5, "skipped": [2]}
    assert 2 not in atlas.indices("conv2")
    assert atlas.path(2).endswith("img_002.png") and len(atlas.paths) == 6


# ------------------------------------------------------------------------------ resuming
def test_an_interrupted_run_resumes_to_the_same_store(
    model, images, reference, tmp_path, monkeypatch
):
    store = tmp_path / "resumed.zarr"
    calls = []
    with pytest.raises(Cancelled):
        cv.atlas.build(model, images, LAYERS, k=K, store=store, batch_size=5, progress=False,
                       cancel=lambda: calls.append(1) or len(calls) > 1)  # fmt: skip
    done = int(open_group(store)["parts"]["done"][:].sum())
    assert 0 < done < 5
    with pytest.raises(CnnVizError, match="not finished: run cnnviz_widgets.atlas.build again"):
        cv.atlas.open(store)

    computed = []
    real = atlas_worker.summarise_batch
    monkeypatch.setattr(
        atlas_worker, "summarise_batch", lambda *a: computed.append(a[2].number) or real(*a)
    )
    resumed = cv.atlas.build(model, images, LAYERS, k=K, store=store, batch_size=5,
                             progress=False)  # fmt: skip
    assert len(computed) == 5 - done  # finished batches are not computed again
    assert_same_store(resumed, reference)
    # A finished store opens as it is: nothing runs.
    again = cv.atlas.build(model, images, LAYERS, k=K, store=store, batch_size=5, progress=False)
    assert len(computed) == 5 - done and again.layers == LAYERS


def test_a_half_written_batch_is_computed_again(model, images, reference, tmp_path):
    store = tmp_path / "torn.zarr"
    with pytest.raises(Cancelled):
        cv.atlas.build(model, images, LAYERS, k=K, store=store, batch_size=5, progress=False,
                       cancel=lambda: True)  # fmt: skip
    parts = open_group(store, mode="r+")["parts"]
    parts["score"][0] = np.full(parts["score"].shape[1:], 1e9, np.float32)  # torn: no done mark
    resumed = cv.atlas.build(model, images, LAYERS, k=K, store=store, batch_size=5, progress=False)
    assert_same_store(resumed, reference)


def test_a_store_built_with_other_parameters_is_refused(model, images, reference):
    with pytest.raises(CnnVizError, match=r"other parameters \(k: 4 → 3\).*overwrite=True"):
        cv.atlas.build(model, images, LAYERS, k=3, store=reference.store, batch_size=5)


def test_an_atlas_opens_elsewhere_without_tensorflow(reference, tmp_path):
    copy = tmp_path / "copied.zarr"
    shutil.copytree(reference.store, copy)
    code = (
        "import sys, cnnviz_widgets as cv\n"
        f"atlas = cv.atlas.open({str(copy)!r})\n"
        "print([r.index for r in atlas.top('conv2', 1)], atlas.stats('conv1')['mean'][0])\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'dask') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == f"{reference.indices('conv2')[1].tolist()} 1.0"
    assert lines[1] == "[]"


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"k": 0}, CnnVizError, r"k must be ≥ 1; got 0\."),
        ({"k": 2.5}, CnnVizError, r"k must be an int; got 2\.5"),
        ({"batch_size": 0}, CnnVizError, r"batch_size must be ≥ 1; got 0\."),
        (
            {"layers": ["gap"]},
            LayerError,
            r"Layer 'gap' \(GlobalAveragePooling2D\) has output shape \(6,\), not a spatial",
        ),
        (
            {"layers": ["conv3"]},
            LayerError,
            r"No layer 'conv3' in model 'atlas_tiny'\. Did you mean: .*'conv2'",
        ),
    ],
)
def test_bad_arguments_get_clear_errors(model, images, tmp_path, kwargs, error, message):
    arguments = {"layers": LAYERS, "store": tmp_path / "x.zarr", **kwargs}
    with pytest.raises(error, match=message):
        cv.atlas.build(model, images, **arguments)
    assert not os.path.exists(tmp_path / "x.zarr")  # refused before anything is written


def test_empty_sources_are_refused(model, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnVizError, match="is empty: there are no images"):
        cv.atlas.build(model, [], store=tmp_path / "a.zarr")
    with pytest.raises(CnnVizError, match="holds no image file"):
        cv.atlas.build(model, tmp_path / "empty", store=tmp_path / "b.zarr")
    with pytest.raises(CnnVizError, match="is empty: no images to read"):
        cv.atlas.build(model, lambda: iter(()), store=tmp_path / "c.zarr", progress=False)


def test_no_readable_image_is_an_error_not_an_empty_atlas(model, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"broken")
    with pytest.raises(CnnVizError, match="None of the 2 images .* could be read"):
        cv.atlas.build(model, [bad, bad], store=tmp_path / "a.zarr", progress=False)


def test_unknown_layer_and_channel_when_reading(reference):
    with pytest.raises(
        LayerError,
        match="The atlas has no layer 'conv9'. Did you mean: 'conv2', 'conv1'\\? It holds 3 layers",
    ):
        reference.top("conv9", 0)
    with pytest.raises(
        CnnVizError, match=r"channel 6 is out of range: layer 'conv2' has 6 channels \(0–5\)"
    ):
        reference.top("conv2", 6)


def test_default_layers_are_the_convolutions(model, images, tmp_path):
    atlas = cv.atlas.build(model, images[:4], k=2, store=tmp_path / "a.zarr", progress=False)
    assert atlas.layers == ["conv1", "conv2"]
    assert "model 'atlas_tiny', 2 layers, 10 channels, k=2, 4 images" in repr(atlas)


def test_filter_ascent_images_are_stored(model, images, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    atlas = cv.atlas.build(model, images[:4], ["conv2"], k=2, store=tmp_path / "a.zarr",
                           ascent={"size": 16, "steps": 2}, progress=False)  # fmt: skip
    want = cv.filter_ascent(model, "conv2", range(6), size=16, steps=2)
    image = atlas.ascent("conv2", 4)
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, np.round(want[4] * 255).astype(np.uint8))


# ------------------------------------------------------------------------------ on a cluster
@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


@pytest.mark.atlas_cluster
def test_a_two_process_cluster_gives_the_same_store(model, images, reference, cluster, tmp_path):
    atlas = cv.atlas.build(model, images, LAYERS, k=K, store=tmp_path / "c.zarr",
                           client=cluster, batch_size=5, progress=False)  # fmt: skip
    assert_same_store(atlas, reference)


@pytest.mark.atlas_cluster
def test_a_worker_killed_mid_run_changes_nothing(model, images, reference, cluster, tmp_path):
    import signal

    pids = cluster.run(os.getpid)
    killed = []

    def kill_once() -> bool:
        if not killed:
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
        return False

    atlas = cv.atlas.build(model, images, LAYERS, k=K, store=tmp_path / "k.zarr",
                           client=cluster, batch_size=2, progress=False,
                           cancel=kill_once)  # fmt: skip
    assert killed
    reference_2 = cv.atlas.build(model, images, LAYERS, k=K, store=tmp_path / "r.zarr",
                                 batch_size=2, progress=False)  # fmt: skip
    assert_same_store(atlas, reference_2)
