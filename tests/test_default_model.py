"""Tests for the offline EfficientNet-Lite0 default model (real weights, real predictions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz_widgets.engine import models as default_model
from cnnviz_widgets.engine.models import imagenet_labels, load_default_model
from cnnviz_widgets.errors import ModelError
from cnnviz_widgets.samples import sample_image

pytestmark = pytest.mark.default_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    return load_default_model()


@pytest.fixture(scope="module")
def state() -> dict[str, np.ndarray]:
    return default_model._read_state_dict()


def _center_crop_224(image: np.ndarray) -> np.ndarray:
    """The standard ImageNet evaluation view: shorter side to 224 (PIL bilinear), centre crop."""
    height, width = image.shape[:2]
    scale = 224 / min(height, width)
    size = (round(width * scale), round(height * scale))
    resized = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    top, left = (resized.shape[0] - 224) // 2, (resized.shape[1] - 224) // 2
    return resized[top : top + 224, left : left + 224]


def _probabilities(model, image: np.ndarray) -> np.ndarray:
    logits = np.asarray(model(image.astype(np.float32)[np.newaxis], training=False))[0]
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def test_labels() -> None:
    labels = imagenet_labels()
    assert len(labels) == 1000
    assert labels[0] == "tench"
    assert labels[285] == "Egyptian cat"
    assert labels[967] == "espresso"
    labels[0] = "changed"
    assert imagenet_labels()[0] == "tench"  # callers get their own list


def test_same_object_every_call(model) -> None:
    assert load_default_model() is model


def test_top_level_structure(model) -> None:
    assert model.name == "efficientnet_lite0"
    assert [layer.name for layer in model.layers] == [
        "image",
        "preprocess",
        "backbone",
        "avg_pool",
        "logits",
    ]
    preprocess = model.get_layer("preprocess")
    assert preprocess.scale == pytest.approx(1 / 128)
    assert preprocess.offset == pytest.approx(-127 / 128)
    assert model.get_layer("logits").get_config()["activation"] == "linear"  # logits, no softmax


def test_backbone_layer_names(model) -> None:
    backbone = model.get_layer("backbone")
    names = [layer.name for layer in backbone.layers]
    assert names[:4] == ["backbone_input", "stem_conv", "stem_bn", "stem_activation"]
    assert names[4:9] == [
        "block1a_dwconv",
        "block1a_bn",
        "block1a_activation",
        "block1a_project_conv",
        "block1a_project_bn",
    ]
    assert names[9:12] == ["block2a_expand_conv", "block2a_expand_bn", "block2a_expand_activation"]
    assert names[-3:] == ["top_conv", "top_bn", "top_activation"]
    adds = [n for n in names if n.endswith("_add")]
    # Residual adds wherever stride is 1 and channels are unchanged: every repeat after the first.
    assert adds == [
        "block2b_add",
        "block3b_add",
        "block4b_add",
        "block4c_add",
        "block5b_add",
        "block5c_add",
        "block6b_add",
        "block6c_add",
        "block6d_add",
    ]
    assert len(names) == 141
    assert all(len(layer.output.shape) == 4 for layer in backbone.layers)
    assert tuple(backbone.output.shape) == (None, None, None, 1280)
    # No squeeze-excite in the Lite variant; ReLU6 everywhere.
    assert not any("_se_" in n for n in names)
    relus = [layer for layer in backbone.layers if type(layer).__name__ == "ReLU"]
    assert len(relus) == 33 and all(float(layer.max_value) == 6.0 for layer in relus)


def test_batch_norm_and_padding_settings(model) -> None:
    backbone = model.get_layer("backbone")
    for layer in backbone.layers:
        config = layer.get_config()
        if type(layer).__name__ == "BatchNormalization":
            assert config["epsilon"] == pytest.approx(1e-3)
        if "padding" in config:
            assert config["padding"] == "same"


def test_parameter_count(model) -> None:
    assert model.count_params() == 4_694_024
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 4_652_008


def test_weights_are_the_state_dict_transposed(model, state) -> None:
    backbone = model.get_layer("backbone")
    np.testing.assert_array_equal(
        backbone.get_layer("stem_conv").get_weights()[0],
        state["_conv_stem.weight"].transpose(2, 3, 1, 0),
    )
    np.testing.assert_array_equal(
        backbone.get_layer("block4c_dwconv").get_weights()[0],
        state["_blocks.7._depthwise_conv.weight"].transpose(2, 3, 0, 1),
    )
    gamma, beta, mean, var = backbone.get_layer("block7a_project_bn").get_weights()
    np.testing.assert_array_equal(gamma, state["_blocks.15._bn2.weight"])
    np.testing.assert_array_equal(beta, state["_blocks.15._bn2.bias"])
    np.testing.assert_array_equal(mean, state["_blocks.15._bn2.running_mean"])
    np.testing.assert_array_equal(var, state["_blocks.15._bn2.running_var"])
    kernel, bias = model.get_layer("logits").get_weights()
    np.testing.assert_array_equal(kernel, state["_fc.weight"].T)
    np.testing.assert_array_equal(bias, state["_fc.bias"])


def test_every_state_dict_tensor_is_used(state) -> None:
    import keras

    built, links = default_model._build(keras)
    used: set[str] = set()
    for link in links:
        default_model._keras_weights(link, state, used)
    counters = {k for k in state if k.endswith(".num_batches_tracked")}
    assert len(counters) == 49
    assert used == set(state) - counters
    assert len(used) == 296 - 49

    # The loader itself refuses a file with tensors it cannot place, and one missing a tensor.
    extra = dict(state, **{"_blocks.99._bn0.weight": np.ones(3, np.float32)})
    with pytest.raises(ModelError, match=r"1 tensors of the weights file were not used"):
        default_model._load_weights(built, links, extra)
    missing = {k: v for k, v in state.items() if k != "_bn1.bias"}
    with pytest.raises(ModelError, match=r"no tensor '_bn1\.bias' for layer 'top_bn'"):
        default_model._load_weights(built, links, missing)


@pytest.mark.parametrize("size", [(160, 200), (224, 224)])
def test_any_input_size(model, size: tuple[int, int]) -> None:
    x = np.full((1, *size, 3), 127.0, dtype=np.float32)
    out = np.asarray(model(x, training=False))
    assert out.shape == (1, 1000)
    assert np.isfinite(out).all()


# Measured with the standard ImageNet evaluation view (shorter side 224, centre crop 224).
@pytest.mark.parametrize(
    ("name", "top3", "top1_probability"),
    [("chelsea", [285, 282, 281], 0.394), ("coffee", [967, 968, 925], 0.944)],
)
def test_predictions_on_real_photos(
    model, name: str, top3: list[int], top1_probability: float
) -> None:
    probabilities = _probabilities(model, _center_crop_224(sample_image(name)))
    assert list(np.argsort(-probabilities)[:3]) == top3
    assert probabilities[top3[0]] == pytest.approx(top1_probability, abs=0.05)


def test_chelsea_squashed_to_224_still_egyptian_cat(model) -> None:
    image = np.asarray(
        Image.fromarray(sample_image("chelsea")).resize((224, 224), Image.Resampling.BILINEAR)
    )
    probabilities = _probabilities(model, image)
    assert list(np.argsort(-probabilities)[:3]) == [285, 282, 281]
    assert probabilities[285] == pytest.approx(0.79, abs=0.05)


def test_importing_the_module_does_not_load_tensorflow() -> None:
    code = "import cnnviz_widgets.engine.models, sys; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
