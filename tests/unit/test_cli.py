"""The command line: the documented command names and flags are a contract."""

from __future__ import annotations

import json

import pytest

from jobrunner.cli import build_parser, main

CONTRACT = {
    "work": [
        "--beanstalk",
        "--tube",
        "--concurrency",
        "--publisher",
        "--results-dir",
        "--base-url",
        "--allow-host",
        "--config",
    ],
    "submit": [
        "--type",
        "--input",
        "--result",
        "--param",
        "--params",
        "--tube",
        "--priority",
        "--delay",
        "--ttr",
    ],
    "serve": ["--results-dir", "--host", "--port", "--cors-origin"],
}


@pytest.mark.parametrize("command", sorted(CONTRACT))
def test_documented_flags_exist(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every flag the CLI reference names for a command is accepted by it."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    for flag in CONTRACT[command]:
        assert flag in text, (command, flag)


def test_commands_exist() -> None:
    """plugins, stats, peek, buried, kick, delete and config are commands."""
    parser = build_parser()
    for command in ("plugins", "stats", "peek", "buried", "kick", "delete", "config"):
        args = parser.parse_args([command] + (["1"] if command == "delete" else []))
        assert args.command == command


def test_config_shows_sources_and_masks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`jobrunner config --json` shows merged values, their sources and masked secrets."""
    monkeypatch.setenv("JOBRUNNER_HTTP_TOKEN", "t0ps3cret")
    monkeypatch.setenv("JOBRUNNER_TUBE", "a,b")
    assert main(["config", "--json", "--concurrency", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["concurrency"] == {"value": 5, "source": "flag"}
    assert out["tube"] == {"value": ["a", "b"], "source": "env"}
    assert out["http_token"]["value"] == "********"
    assert out["grace"]["source"] == "default"


def test_bad_setting_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid setting is a usage error (exit 2) with a message naming it."""
    monkeypatch.setenv("JOBRUNNER_CONCURRENCY", "lots")
    assert main(["config"]) == 2
    assert "JOBRUNNER_CONCURRENCY" in capsys.readouterr().err


def test_submit_refuses_invalid_job_before_queueing(capsys: pytest.CaptureFixture[str]) -> None:
    """`submit` with a relative input URL is refused at once (exit 2), nothing is put."""
    code = main(
        [
            "submit",
            "--beanstalk",
            "127.0.0.1:1",
            "--type",
            "echo",
            "--input",
            "data.json",
            "--result",
            "http://r.test/x.json",
        ]
    )
    assert code == 2
    assert "input" in capsys.readouterr().err
