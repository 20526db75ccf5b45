"""The command line: --help everywhere, one-line errors with exit status 2."""

from __future__ import annotations

import pytest

from hipaug.cli import main

COMMANDS = [[], ["phantom"], ["phantom", "limb"], ["phantom", "pelvic"], ["data"], ["data", "check"], ["train-gan"],
            ["sample"], ["train-classifier"], ["filter"], ["reproduce"], ["literature"], ["claims"], ["profiles"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "hipaug")
def test_help_everywhere(cmd, capsys):
    assert main([*cmd, "--help"]) == 0
    assert "usage: hipaug" in capsys.readouterr().out


def test_profiles_lists_builtins(capsys):
    assert main(["profiles"]) == 0
    assert {"smoke", "default", "paper"} <= set(capsys.readouterr().out.split())


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("hipaug: error:")]
    assert len(errors) == 1, err
    for n in needles:
        assert n in errors[0], errors[0]


def test_usage_error_exits_2(capsys):
    assert main(["phantom", "limb"]) == 2  # --out missing
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize("argv,needles", [
    (["reproduce", "--profile", "nope"], ["unknown profile 'nope'"]),
    (["data", "check", "/nonexistent/hipaug"], ["/nonexistent/hipaug"]),
    (["sample", "--run", "/nonexistent/run", "--out", "x", "--per-class", "2"], ["/nonexistent/run"]),
    (["filter", "--classifier", "/nonexistent/clf", "--synthetic", "s", "--out", "o", "--threshold", "1.5"], ["threshold=1.5"]),
    (["filter", "--classifier", "/nonexistent/clf", "--synthetic", "s", "--out", "o"], ["/nonexistent/clf"]),
    (["phantom", "limb", "--out", "OUT", "--image-size", "48"], ["image_size=48"]),
    (["reproduce", "--profile", "smoke", "--limb-dir", "/nonexistent/limbs"], ["limb_dir", "/nonexistent/limbs"]),
])
def test_bad_parameters_give_one_line_and_exit_2(argv, needles, capsys, tmp_path):
    argv = [str(tmp_path / a) if a in ("OUT", "x", "s", "o") else a for a in argv]
    assert main(argv) == 2
    _one_line_error(capsys, *needles)


def test_train_gan_rejects_unsupported_size(tmp_path, capsys):
    assert main(["phantom", "limb", "--out", str(tmp_path / "limb"), "--per-class", "3", "--image-size", "32"]) == 0
    capsys.readouterr()
    assert main(["train-gan", "--data", str(tmp_path / "limb"), "--out", str(tmp_path / "run"), "--image-size", "48"]) == 2
    _one_line_error(capsys, "image_size=48")


def test_filter_rule_defaults_to_the_profile(capsys):
    """No CLI default of its own: the profile's rule unless --threshold/--top-k overrides it."""
    from hipaug.config import load_profile
    from hipaug.errors import ConfigError
    from hipaug.method.filter import Rule, rule_for

    for name in ("smoke", "default", "paper"):
        spec = load_profile(name).filter
        assert rule_for(spec) == Rule(spec.threshold, spec.top_k) == spec.rule
        assert rule_for(spec, threshold=0.3) == Rule(threshold=0.3) and rule_for(spec, top_k=4) == Rule(top_k=4)
    with pytest.raises(ConfigError, match="set exactly one of threshold and top_k"):
        Rule(None, None)
    with pytest.raises(ConfigError, match="set exactly one"):
        rule_for(load_profile("smoke").filter, threshold=0.3, top_k=4)
    assert "the profile's rule" in " ".join(_help(["filter"], capsys).split())


def _help(cmd, capsys) -> str:
    assert main([*cmd, "--help"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("extra,needles", [
    (["--profile", "nope"], ["unknown profile 'nope'"]),
    (["--profile", "smoke", "--top-k", "0"], ["top_k=0"]),
    (["--profile", "smoke"], ["/nonexistent/clf"]),  # the smoke rule (top-k) is valid: the next check fails
])
def test_filter_profile_errors_are_one_line(extra, needles, capsys, tmp_path):
    argv = ["filter", "--classifier", "/nonexistent/clf", "--synthetic", str(tmp_path / "s"), "--out", str(tmp_path / "o")]
    assert main(argv + extra) == 2
    _one_line_error(capsys, *needles)
