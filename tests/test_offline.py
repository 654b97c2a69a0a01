"""Nothing in the package reaches the network: every default path works with sockets refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter whose sockets refuse to connect or resolve names, so any attempt
# to download (weights, data sets, fonts) fails loudly instead of hanging or succeeding.
SCRIPT = textwrap.dedent(
    """
    import socket
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted in an offline test")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.getaddrinfo = refuse
    socket.create_connection = refuse

    import os, tempfile
    os.environ["CNNVIZ_CACHE_DIR"] = tempfile.mkdtemp()
    import cnnviz_widgets as cv
    from cnnviz_widgets.ascent import filter_ascent
    from cnnviz_widgets.report import write_report

    model = cv.load_default_model()
    photos = {name: cv.sample_image(name).shape for name in cv.sample_image_names()}
    image = cv.sample_image("coffee")
    top = cv.predict_top(model, image, k=1)
    heat = cv.grad_cam(model, image)
    maps = cv.activations(model, image, "backbone/block3a_expand_activation")
    images = filter_ascent(model, "backbone/block3a_expand_activation", [0, 1], size=64, steps=4)
    page = write_report(os.path.join(tempfile.mkdtemp(), "r.html"), model=model, image=image)
    print(len(photos), top[0][0], heat.shape, maps.shape, images.shape, page.exists(), len(attempts))
    """
)


@pytest.mark.default_model
def test_default_paths_never_touch_the_network():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [
        "6", "967", "(400,", "600)", "(56,", "84,", "144)", "(2,", "64,", "64,", "3)", "True", "0",
    ]  # fmt: skip
