"""The trained models shipped in models/: complete, verified, within budget, and translating."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import Direction, TranslateOptions
from pipeline.manifests import CYCLEGAN, RDN, read_manifests
from pipeline.registry import ModelRegistry
from pipeline.translate import translate
from tests.pipeline.conftest import photo_bytes

MODELS = Path(__file__).resolve().parents[2] / "models"
#: Issue 7's budget for all shipped weights together.
MAX_TOTAL_BYTES = 80_000_000


@pytest.fixture(scope="module")
def shipped() -> ModelRegistry:
    return ModelRegistry(MODELS)


def test_every_direction_and_an_rdn_are_shipped_trained_and_documented():
    manifests = read_manifests(MODELS)
    served = {d for m in manifests.values() if m.kind == CYCLEGAN for d in m.directions}
    assert served == {d.value for d in Direction}
    assert any(m.kind == RDN for m in manifests.values())
    for m in manifests.values():
        assert m.trained, m.name
        assert m.provenance.get("recipe") and m.provenance.get("steps"), m.name
        assert m.metrics, f"{m.name} ships without its evaluation metrics"
    assert sum((MODELS / m.weights_file).stat().st_size for m in manifests.values()) <= MAX_TOTAL_BYTES


@pytest.mark.slow
@pytest.mark.parametrize("direction", list(Direction), ids=lambda d: d.value)
def test_each_shipped_direction_translates_a_photo(shipped, direction):
    """Weights verified against their sha256, a 512 px result that is no copy of the input."""
    photo = photo_bytes(320, 240)
    result = translate(photo, direction, registry=shipped, options=TranslateOptions(size=512))
    out = np.asarray(Image.open(io.BytesIO(result.data)).convert("RGB"), np.float32)
    assert out.shape == (512, 512, 3)
    assert result.metadata["untrained"] is False
    assert [m["trained"] for m in result.metadata["models"]] == [True, True]
    source = Image.open(io.BytesIO(photo)).convert("RGB").crop((40, 0, 280, 240)).resize((512, 512))
    assert np.abs(out - np.asarray(source, np.float32)).mean() > 2.0  # the generator changed it
    assert 20 < out.mean() < 235 and out.std() > 5  # not a blank or saturated frame
