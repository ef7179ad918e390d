import json
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from tests.pipeline.conftest import photo_bytes
from tests.pipeline.test_intake import png_declaring


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


@pytest.mark.slow
def test_translate_with_random_weights(tmp_path):
    src, out = tmp_path / "photo.jpg", tmp_path / "out.png"
    src.write_bytes(photo_bytes(640, 480))
    proc = run_cli("translate", src, "-d", "summer2winter", "-o", out, "--random-weights", "--crop", "100,50,400")
    assert proc.returncode == 0, proc.stderr
    assert "not a real translation" in proc.stderr
    assert Image.open(out).size == (512, 512)
    assert '"untrained": true' in proc.stdout


@pytest.mark.slow
def test_translate_full_size_writes_the_crops_own_side(tmp_path):
    src, out = tmp_path / "big.jpg", tmp_path / "out.jpg"
    src.write_bytes(photo_bytes(1400, 1100))
    proc = run_cli("translate", src, "-d", "summer2winter", "--size", "full", "-o", out, "--random-weights")
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == (1100, 1100)
    assert json.loads(proc.stdout)["output"] == {"width": 1100, "height": 1100}
    capped = run_cli("translate", src, "-d", "summer2winter", "--size", "full", "--max-side", "800", "-o", out,
                     "--random-weights")
    assert Image.open(out).size == (800, 800)
    assert json.loads(capped.stdout)["output"]["capped_from"] == 1100


@pytest.mark.parametrize(("content", "message"), [
    (b"this is text", "error: not an image"),
    (b"", "error: the file is empty"),
    (photo_bytes(640, 480)[:3000], "error: the file is truncated"),
    (png_declaring(50000, 50000), "error: image is 2500 MP, the limit is 40 MP"),
])
def test_bad_input_exits_nonzero_with_the_message(tmp_path, content, message):
    src = tmp_path / "in.jpg"
    src.write_bytes(content)
    proc = run_cli("translate", src, "-d", "day2night", "-o", tmp_path / "o.png", "--random-weights")
    assert proc.returncode == 2
    assert proc.stderr.strip() == message
    assert "Traceback" not in proc.stderr and not (tmp_path / "o.png").exists()


def test_unknown_direction_and_bad_crop(tmp_path):
    src = tmp_path / "in.jpg"
    src.write_bytes(photo_bytes())
    proc = run_cli("translate", src, "-d", "day2dusk", "-o", tmp_path / "o.png")
    assert proc.returncode == 2 and "valid directions are: day2night" in proc.stderr
    proc = run_cli("translate", src, "-d", "day2night", "-o", tmp_path / "o.png", "--crop", "0,0")
    assert proc.returncode == 2 and "crop box must be 'x,y,size'" in proc.stderr


def test_missing_models_exit_with_the_command_to_make_them(tmp_path):
    src = tmp_path / "in.jpg"
    src.write_bytes(photo_bytes())
    proc = run_cli("--model-dir", tmp_path, "translate", src, "-d", "day2night", "-o", tmp_path / "o.png")
    assert proc.returncode == 3 and "python -m pipeline init-random" in proc.stderr


def test_directions_and_models_listing(tiny_model_dir):
    proc = run_cli("--model-dir", tiny_model_dir, "directions")
    assert proc.returncode == 0 and proc.stdout.count("UNTRAINED") == 6
    proc = run_cli("--model-dir", tiny_model_dir, "models")
    assert proc.returncode == 0 and "rdn (rdn, ok)" in proc.stdout
    assert "kept from the model before" not in proc.stdout


def test_models_listing_says_which_generator_was_kept(tiny_model_dir, tmp_path):
    """A pair exported with `training export --generators a2b` lists where its b2a came from."""
    model_dir = tmp_path / "models"
    shutil.copytree(tiny_model_dir, model_dir)
    manifest = json.loads((model_dir / "day2night.json").read_text())
    manifest["provenance"]["kept_generator"] = {"generator": "b2a", "direction": "night2day",
                                                "weights_sha256": "ab" * 32, "provenance": {}, "metrics": {}}
    (model_dir / "day2night.json").write_text(json.dumps(manifest))
    proc = run_cli("--model-dir", model_dir, "models")
    assert proc.returncode == 0 and "night2day: its generator was kept from the model before" in proc.stdout
    assert "abababababababab…" in proc.stdout


def test_help_everywhere():
    for args in ([], ["translate"], ["directions"], ["models"], ["init-random"]):
        proc = run_cli(*args, "--help")
        assert proc.returncode == 0 and "usage:" in proc.stdout
