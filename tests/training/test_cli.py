"""The CLI: every command explains its options; presets fill options; resume keeps the recipe."""

from __future__ import annotations

import json

import pytest

from training.__main__ import main, make_parser
from training.options import CYCLEGAN_PRESETS, CycleGANOptions

COMMANDS = ["dataset", "cyclegan", "rdn", "evaluate", "checkerboard", "classifier", "export", "import-torch",
            "self-ensemble"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for action in make_parser()._subparsers._group_actions[0].choices[command]._actions:
        assert action.help, f"{command} {action.option_strings} has no help"
        assert action.dest in ("help", "data", "preset") or action.option_strings[0] in text


def test_upsample_choices_are_the_networks_upsamplers():
    """The parser lists them without importing TensorFlow; they must stay the network's own."""
    from pipeline import networks

    cyclegan = make_parser()._subparsers._group_actions[0].choices["cyclegan"]
    (upsample,) = [a for a in cyclegan._actions if a.dest == "upsample"]
    assert tuple(upsample.choices) == networks.UPSAMPLERS


def test_dataset_command_prints_splits(pair_dir, data_dir, capsys):
    main(["dataset", str(pair_dir), "--data-dir", str(data_dir)])
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["splits"] == {"train": 14, "test": 4}


def test_preset_then_flags_and_resume_keeps_the_recipe(pair_dir, data_dir, tmp_path):
    run = tmp_path / "run"
    args = make_parser().parse_args(["cyclegan", "--preset", "paper", "--size", "64", "--run-dir", str(run)])
    from training.options import resolve

    options = resolve(args, CycleGANOptions, CYCLEGAN_PRESETS)
    assert (options.size, options.ngf, options.n_blocks, options.epochs, options.epochs_decay) == (64, 64, 9, 100, 100)
    run.mkdir()
    options.save(run / "options.json")
    again = make_parser().parse_args(["cyclegan", "--run-dir", str(run), "--threads", "1"])
    assert resolve(again, CycleGANOptions, CYCLEGAN_PRESETS, run / "options.json").size == 64
    clash = make_parser().parse_args(["cyclegan", "--run-dir", str(run), "--ngf", "8"])
    with pytest.raises(SystemExit, match="other options"):
        resolve(clash, CycleGANOptions, CYCLEGAN_PRESETS, run / "options.json")


@pytest.mark.slow
def test_sigterm_stops_a_background_run_with_a_checkpoint_it_resumes_from(make_pair, tmp_path):
    """A run started with `&` ignores SIGINT; `kill` (SIGTERM) checkpoints the step it was on."""
    import signal
    import subprocess
    import sys
    import time

    pair = make_pair(tmp_path / "warm2cold")
    run = tmp_path / "run"
    command = [sys.executable, "-m", "training", "cyclegan", "--run-dir", str(run), "--threads", "1"]
    recipe = ["--data", str(pair), "--data-dir", str(tmp_path / "tfds"), "--size", "32", "--zoom", "1.25",
              "--ngf", "4", "--n-blocks", "1", "--ndf", "4", "--epochs", "500", "--epochs-decay", "0",
              "--save-every", "0", "--mixed-precision", "off"]
    ignore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `cmd &` in a script
    process = subprocess.Popen(command + recipe, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=ignore_sigint)
    deadline = time.monotonic() + 240
    while not (run / "progress.json").is_file() and time.monotonic() < deadline:  # first epoch (8 steps) done
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)  # ignored, as in a background job
    time.sleep(1)
    assert process.poll() is None
    process.terminate()
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    stopped_at = json.loads((run / "progress.json").read_text())["step"]
    assert f"interrupted: checkpoint at step {stopped_at}" in out and stopped_at >= 8
    assert "run the same command again to resume" in err

    resumed = subprocess.run(command + ["--max-steps", "2"], capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((run / "progress.json").read_text())["step"] == stopped_at + 2


def test_self_ensemble_switches_a_model_with_metrics_measured_that_way(tmp_path, capsys):
    """The weights and their sha256 stay; the metrics are the report's; the former setting and
    metrics are kept; a report measured with the other setting is refused."""
    from pipeline.manifests import read_manifests
    from pipeline.registry import write_random_models

    write_random_models(tmp_path / "models")
    before = read_manifests(tmp_path / "models")["spring2autumn"]
    report = lambda ensemble, rate: {"pair": "spring2autumn", "directions": {"spring2autumn": {"target_rate": rate}},
                                     "source": {"model_dir": "scratch", "self_ensemble": ensemble}}
    (tmp_path / "plain.json").write_text(json.dumps(report("none", 0.5)))
    (tmp_path / "flips.json").write_text(json.dumps(report("flips", 0.7)))
    argv = ["self-ensemble", "--pair", "spring2autumn", "--model-dir", str(tmp_path / "models"),
            "--self-ensemble", "flips", "--report"]

    with pytest.raises(SystemExit, match="measured with self_ensemble 'none'"):
        main([*argv, str(tmp_path / "plain.json")])
    assert main([*argv, str(tmp_path / "flips.json")]) == 0
    assert json.loads(capsys.readouterr().out)["self_ensemble"] == "flips"
    after = read_manifests(tmp_path / "models")["spring2autumn"]
    assert after.self_ensemble == "flips" and after.metrics == {"spring2autumn": {"target_rate": 0.7}}
    assert after.weights_sha256 == before.weights_sha256
    assert after.provenance["served_before"][-1] | {"code_commit": ""} == {
        "self_ensemble": "none", "metrics": before.metrics, "code_commit": ""}


def test_self_ensemble_serves_each_direction_its_own_way_when_named_per_direction(tmp_path, capsys):
    """`DIRECTION=NAME,…` sets each generator's ensemble; the report must have been measured
    with the same setting in every direction; an unknown name or direction is a usage error."""
    from pipeline.manifests import read_manifests
    from pipeline.registry import write_random_models

    write_random_models(tmp_path / "models")
    setting = {"spring2autumn": "flips", "autumn2spring": "shifts-vertical"}
    report = lambda ensemble: {"pair": "spring2autumn", "source": {"self_ensemble": ensemble},
                               "directions": {"spring2autumn": {"target_rate": 0.7},
                                              "autumn2spring": {"target_rate": 0.8}}}
    (tmp_path / "flips.json").write_text(json.dumps(report("flips")))
    (tmp_path / "mixed.json").write_text(json.dumps(report(setting)))
    argv = ["self-ensemble", "--pair", "spring2autumn", "--model-dir", str(tmp_path / "models"),
            "--self-ensemble", "spring2autumn=flips, autumn2spring=shifts-vertical", "--report"]

    with pytest.raises(SystemExit, match="measured with self_ensemble 'flips'"):
        main([*argv, str(tmp_path / "flips.json")])
    assert main([*argv, str(tmp_path / "mixed.json")]) == 0
    assert json.loads(capsys.readouterr().out)["self_ensemble"] == setting
    manifest = read_manifests(tmp_path / "models")["spring2autumn"]
    assert [manifest.self_ensemble_of(d) for d in manifest.directions] == ["flips", "shifts-vertical"]
    for wrong, message in (("spring2autumn=eightfold", "unknown self-ensemble"),
                           ("spring2fall=flips", "unknown direction")):
        with pytest.raises(SystemExit) as exit_:
            main([*argv[:-2], wrong, "--report", str(tmp_path / "mixed.json")])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
