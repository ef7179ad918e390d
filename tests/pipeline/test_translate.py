import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from pipeline import STAGES, CropBox, InputError, InputErrorCode, TranslateOptions
from pipeline.registry import ModelRegistry
from pipeline.translate import translate
from tests.pipeline.conftest import photo_bytes


@pytest.fixture(scope="module")
def registry(tiny_model_dir):
    return ModelRegistry(tiny_model_dir)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_translate_gives_512_png_with_every_stage_timed(registry):
    seen = []
    result = translate(photo_bytes(400, 300), "summer2winter", registry=registry, on_stage=seen.append)
    image = decoded(result.data)
    assert (image.format, image.size, image.mode) == ("PNG", (512, 512), "RGB")
    assert seen == list(STAGES)
    assert set(result.metadata["timings_ms"]) == set(STAGES)
    assert result.metadata["crop"] == (50, 0, 300)
    assert [m["kind"] for m in result.metadata["models"]] == ["cyclegan", "rdn"]


def test_untrained_results_say_so(registry):
    metadata = translate(photo_bytes(), "day2night", registry=registry).metadata
    assert metadata["untrained"] is True and "untrained" in metadata["warning"]


@pytest.mark.parametrize(("options", "fmt", "size"), [
    (TranslateOptions(enhance=False, size=256, format="jpeg"), "JPEG", 256),
    (TranslateOptions(enhance=True, size=256, format="webp"), "WEBP", 256),
    (TranslateOptions(enhance=False, size=512, format="png"), "PNG", 512),
])
def test_options(registry, options, fmt, size):
    result = translate(photo_bytes(), "night2day", options=options, registry=registry, include_before=True)
    assert (decoded(result.data).format, decoded(result.data).size) == (fmt, (size, size))
    assert decoded(result.before).size == (size, size)
    assert ("rdn" in result.metadata["timings_ms"]) is options.enhance


def test_bad_options_are_input_errors():
    with pytest.raises(InputError) as err:
        TranslateOptions(size=300)
    assert err.value.code is InputErrorCode.BAD_OPTION
    with pytest.raises(InputError):
        TranslateOptions(format="gif")


def test_bad_input_is_refused_before_any_model_runs(registry):
    with pytest.raises(InputError) as err:
        translate(photo_bytes(200, 200), "spring2autumn", CropBox(100, 100, 150), registry=registry)
    assert err.value.code is InputErrorCode.BAD_CROP
    with pytest.raises(InputError) as err:
        translate(b"GIF89a nope", "spring2autumn", registry=registry)
    assert err.value.code in (InputErrorCode.CORRUPT, InputErrorCode.NOT_AN_IMAGE)


def test_crop_box_selects_what_is_translated(registry):
    """Translating a crop equals translating that crop supplied as a whole photo."""
    image = Image.fromarray(np.random.default_rng(3).integers(0, 255, (300, 500, 3), np.uint8))
    full, part = io.BytesIO(), io.BytesIO()
    image.save(full, "PNG")
    image.crop((120, 20, 376, 276)).save(part, "PNG")
    options = TranslateOptions(enhance=False, size=256)
    a = translate(full.getvalue(), "autumn2spring", CropBox(120, 20, 256), options, registry=registry)
    b = translate(part.getvalue(), "autumn2spring", None, options, registry=registry)
    assert np.array_equal(np.asarray(decoded(a.data)), np.asarray(decoded(b.data)))


def test_thread_safe_and_deterministic(registry):
    data = photo_bytes(300, 300)
    expected = translate(data, "winter2summer", registry=registry).data
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: translate(data, "winter2summer", registry=registry).data, range(8)))
    assert all(r == expected for r in results)


def test_scaling_is_trainings():
    """The generator's input is x/127.5 - 1, exactly `networks.to_model_range`."""
    from pipeline import networks
    from pipeline.translate import _to_batch

    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    image = Image.fromarray(np.stack([pixels] * 3, -1))
    assert np.array_equal(_to_batch(image)[0], networks.to_model_range(np.asarray(image)).numpy())


def test_light_modules_do_not_import_tensorflow(tiny_model_dir):
    code = (
        "import sys, pipeline\n"
        "from pipeline import Direction, CropBox, open_photo, direction_status, TranslateOptions, read_manifests\n"
        "import pipeline.intake, pipeline.crop, pipeline.directions, pipeline.manifests, pipeline.options\n"
        f"assert all(s.installed for s in direction_status({str(tiny_model_dir)!r}))\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "assert 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
