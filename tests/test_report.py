"""The ``cnnviz report`` command and the safe loading of model files."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz_widgets import report
from cnnviz_widgets.engine.models import load_model_file
from cnnviz_widgets.errors import ModelError
from cnnviz_widgets.explain import predict_top

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def model_file(tiny_functional, tmp_path):
    path = tmp_path / "tiny.keras"
    tiny_functional.save(path)
    return path


def _pictures(page: str) -> list[np.ndarray]:
    found = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b)))) for b in found]


def test_report_of_a_model_file_has_every_section(model_file, tiny_functional, rgb16, tmp_path):
    seen = []
    out = report.write_report(
        tmp_path / "r.html", model=model_file, image=rgb16,
        progress=lambda done, total, what: seen.append((done, total, what)),
    )  # fmt: skip
    page = out.read_text(encoding="utf-8")
    top_class = predict_top(tiny_functional, rgb16, k=1)[0][0]
    assert re.findall(r"<h2>(.*?)</h2>", page) == [
        "Image", f"Grad-CAM for “class {top_class}”",
        "Feature maps: conv1", "Feature maps: relu1", "Feature maps: pool1",
        "Feature maps: conv2", "Layers",
    ]  # fmt: skip
    pictures = _pictures(page)
    np.testing.assert_array_equal(pictures[0], rgb16)
    assert [s[:2] for s in seen] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert seen[-1][2] == f"wrote {out}"


def test_spread_layers_picks_first_last_and_evenly_between():
    paths = [f"l{i}" for i in range(10)]
    assert report.spread_layers(paths, 4) == ["l0", "l3", "l6", "l9"]
    assert report.spread_layers(paths[:3], 4) == ["l0", "l1", "l2"]


def test_model_files_load_in_safe_mode(keras, tmp_path):
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Lambda(lambda x: x * 2)(keras.layers.Conv2D(2, 3)(inputs))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(
        ModelError, match=r"lambda\.keras needs custom Python code to load, which safe mode refuses"
    ):
        load_model_file(path)


def test_missing_or_wrong_model_file_is_explained(tmp_path):
    with pytest.raises(ModelError, match="No model file at .*nope.keras"):
        load_model_file(tmp_path / "nope.keras")
    (tmp_path / "weights.npz").write_bytes(b"x")
    with pytest.raises(ModelError, match=r"weights\.npz is not a Keras model file"):
        load_model_file(tmp_path / "weights.npz")


def test_command_line_writes_the_report_and_explains_errors(model_file, tmp_path):
    image = tmp_path / "photo.png"
    Image.fromarray(np.full((20, 24, 3), 90, np.uint8)).save(image)
    out = tmp_path / "cli.html"
    args = [sys.executable, "-m", "cnnviz_widgets", "report", "--model", str(model_file),
            "--image", str(image), "--out", str(out), "--layers", "conv1,conv2"]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert re.search(r"wrote .*cli\.html: 100%\|[^|]*\| 4/4 ", done.stderr)  # a tqdm bar
    assert re.findall(r"<h2>Feature maps: (.*?)</h2>", out.read_text()) == ["conv1", "conv2"]
    bad = subprocess.run(
        [*args[:-2], "--layers", "conv9"], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert bad.returncode == 2
    assert "cnnviz: No layer 'conv9' in model 'tiny_functional'. Did you mean:" in bad.stderr
