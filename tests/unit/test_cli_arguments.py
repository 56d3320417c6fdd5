"""The `adserve` CLI refuses what an operator mistypes before it reads or writes anything, and never answers
with a traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from adserve.cli.main import CampaignFileError, main, read_campaigns
from adserve.cli.models import run_model_command

from devstack.fakes import InMemoryModelStore
from tests.support.published_models import model_files
from tests.unit.test_retraining import parse

ENVIRONMENT = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.mark.parametrize("rows", [20, 50_000])
def test_output_piped_into_a_reader_that_stops_early_ends_quietly(rows: int) -> None:
    # `adserve logs ... | head`: the reader closes the pipe while the command still prints (a few rows: all of
    # them still in the buffer when the command returns)
    code = (
        "import adserve.cli.main as cli\n"
        f"cli.main = lambda argv=None: [print('row' * 50) for _ in range({rows})] and 0\n"
        "raise SystemExit(cli.console())\n"
    )
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()
    assert process.wait(timeout=120) == 0
    assert b"Traceback" not in process.stderr.read()


def test_a_campaigns_file_nested_past_the_parsers_depth_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CampaignFileError):
        read_campaigns(path)


@pytest.mark.parametrize(
    "command",
    [
        ["logs", "--from", "1970-01-01T00", "--to", "9998-12-31T23", "--bucket", "b"],
        ["logs", "--from", "2026-12-02T00", "--to", "2026-12-01T00", "--bucket", "b"],
        ["train", "--from", "1970-01-01T00", "--to", "2026-01-01T00", "--models-bucket", "m", "--logs-bucket", "l"],
    ],
)
def test_a_range_of_the_logs_that_is_backwards_or_over_a_year_is_refused_before_any_read(
    command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: a read would fail, not hang
    assert main(command) == 2
    said = capsys.readouterr().err
    assert "--to is before --from" in said or "at most 366" in said


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["caps", "show", "lïstener"], "not a listener id"),
        (["caps", "show", ""], "not a listener id"),
        (["promote", "v-1", "--challenger", "--share", "0"], "not a share of listeners"),
        (["promote", "v-1", "--challenger", "--share", "2"], "not a share of listeners"),
        (["explain", "--request", "r.json", "--terms", "-1"], "not a number of terms"),
    ],
)
def test_an_argument_out_of_its_domain_is_an_argument_error(
    arguments: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(arguments)
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


def test_a_share_without_challenger_is_refused_rather_than_promoting_a_champion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    models = InMemoryModelStore(files={"v-1": model_files("v-1")})
    assert run_model_command(parse("promote", "v-1", "--share", "0.5"), models=models) == 2
    assert "add --challenger" in capsys.readouterr().err
    assert models.read_pointer() is None
    assert run_model_command(parse("promote", "v-1"), models=models) == 0
    assert json.loads(capsys.readouterr().out)["champion"] == "v-1"


def test_a_plot_path_that_is_a_directory_is_refused_before_anything_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = ["--table", "c", "--delivery-table", "d", "--pacing-table", "p"]
    assert main(["delivery", "cmp-1", *tables, "--plot", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
