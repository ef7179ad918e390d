import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from pipeline import OUTPUT_SIZES, STAGES, CropBox, InputError, InputErrorCode, TranslateOptions
from pipeline.registry import ModelRegistry
from pipeline.transfer import resized
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
    (TranslateOptions(enhance=True, size=512, format="png", transfer=False), "PNG", 512),
])
def test_options(registry, options, fmt, size):
    result = translate(photo_bytes(), "night2day", options=options, registry=registry, include_before=True)
    assert (decoded(result.data).format, decoded(result.data).size) == (fmt, (size, size))
    assert decoded(result.before).size == (size, size)
    assert ("rdn" in result.metadata["timings_ms"]) is options.enhance
    assert ("transfer" in result.metadata["timings_ms"]) is options.transfer


@pytest.mark.parametrize("size", OUTPUT_SIZES)
def test_each_output_size(registry, size):
    """Fixed sizes are served as asked, whatever the crop; `full` is the crop's own side."""
    result = translate(photo_bytes(700, 600), "summer2winter", options=TranslateOptions(size=size, format="jpeg"),
                       registry=registry)
    side = 600 if size == "full" else size
    assert decoded(result.data).size == (side, side) == (result.width, result.height)
    assert result.metadata["output"] == {"width": side, "height": side}
    assert result.metadata["options"]["size"] == size


def test_full_size_above_the_cap_is_served_at_the_cap(registry):
    result = translate(photo_bytes(700, 600), "day2night", options=TranslateOptions(size="full"),
                       registry=registry, max_side=300, include_before=True)
    assert decoded(result.data).size == decoded(result.before).size == (300, 300)
    assert result.metadata["output"] == {"width": 300, "height": 300, "capped_from": 600}


def test_a_fixed_size_above_the_cap_is_an_input_error(registry):
    with pytest.raises(InputError) as err:
        translate(photo_bytes(), "day2night", options=TranslateOptions(size=1024), registry=registry, max_side=512)
    assert err.value.code is InputErrorCode.BAD_OPTION and "512" in err.value.message


class _RecolouringGenerator:
    """Stands in for a trained generator: a known colour change, with a checkerboard on top."""

    def __init__(self, real) -> None:
        self.facts = real.facts

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        mix = np.array([[0.3, 0.1, 0.2], [0.1, 0.4, 0.1], [0.2, 0.2, 0.8]], np.float32)
        checker = 0.04 * ((np.indices(batch.shape[1:3]).sum(0) % 2) * 2 - 1)[None, ..., None]
        return np.clip(batch @ mix - 0.2 + checker, -1, 1).astype(np.float32)


def _structured_photo(side: int) -> bytes:
    y, x = np.mgrid[0:side, 0:side] / side
    base = np.stack([0.5 + 0.4 * np.sin(9 * x + 3 * y), 0.5 + 0.4 * np.cos(7 * y),
                     0.5 + 0.3 * np.sin(5 * (x + y))], axis=-1)
    base += 0.15 * (np.sin(120 * x) * np.sin(110 * y) > 0)[..., None]
    buffer = io.BytesIO()
    Image.fromarray((np.clip(base, 0, 1) * 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_transfer_keeps_the_networks_colours_and_the_photos_structure(registry, monkeypatch):
    from skimage.color import rgb2lab
    from skimage.metrics import structural_similarity

    real = registry.generator("summer2winter")
    monkeypatch.setattr(registry, "generator", lambda direction: _RecolouringGenerator(real))
    data = _structured_photo(800)
    run = lambda **kw: np.asarray(decoded(translate(  # noqa: E731
        data, "summer2winter", options=TranslateOptions(enhance=False, **kw), registry=registry).data))
    network = run(size=256, transfer=False)
    plain, carried = run(size="full", transfer=False), run(size="full")
    assert np.linalg.norm(rgb2lab(resized(carried, 256)) - rgb2lab(network), axis=-1).mean() < 3
    luma = lambda a: a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # noqa: E731
    photo = np.asarray(decoded(data))
    ssim = lambda a: structural_similarity(luma(a), luma(photo), data_range=255)  # noqa: E731
    assert ssim(carried) > ssim(plain)


def test_bad_options_are_input_errors():
    for size in (300, "huge", True, "-256"):
        with pytest.raises(InputError) as err:
            TranslateOptions(size=size)
        assert err.value.code is InputErrorCode.BAD_OPTION
    assert TranslateOptions(size="1024").size == 1024 and TranslateOptions(size="Full").size == "full"
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
