"""The CLI: every command explains its options; presets fill options; resume keeps the recipe."""

from __future__ import annotations

import json

import pytest

from training.__main__ import main, make_parser
from training.options import CYCLEGAN_PRESETS, CycleGANOptions

COMMANDS = ["dataset", "cyclegan", "rdn", "evaluate", "export", "import-torch"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for action in make_parser()._subparsers._group_actions[0].choices[command]._actions:
        assert action.help, f"{command} {action.option_strings} has no help"
        assert action.dest in ("help", "data", "preset") or action.option_strings[0] in text


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
