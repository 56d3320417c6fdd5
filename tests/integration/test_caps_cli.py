"""`adserve caps show`: a listener's live counters, as Decide reads them, from the command line."""

from datetime import UTC, datetime, timedelta

import pytest
from adserve.cli.main import main
from adserve.dal.aws_clients import dynamodb_client

from devstack.stack import LocalStack


def put_item(table: str, listener: str, key: str, expires_at: datetime, impressions: int | None = None) -> None:
    item = {
        "listener_id": {"S": listener},
        "counter_key": {"S": key},
        "expires_at": {"N": str(int(expires_at.timestamp()))},
    }
    if impressions is not None:
        item["impressions"] = {"N": str(impressions)}
    dynamodb_client().put_item(TableName=table, Item=item)


def test_caps_show_lists_live_counters_only(local_stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a listener with two live counters, an expired one and an impression marker (as older versions put
    # markers in the listener's partition), under its pseudonym
    table = local_stack.physical_name("FrequencyCapsTable")
    now = datetime.now(UTC)
    listener = local_stack.pseudonyms().listener("l-cli")
    put_item(table, listener, "cap#campaign#cmp-1#day#2026-11-26", now + timedelta(days=1), impressions=2)
    put_item(table, listener, "cap#advertiser#adv-1#lifetime#all", now + timedelta(days=400), impressions=5)
    put_item(table, listener, "cap#campaign#cmp-1#hour#2020-01-01T00", now - timedelta(days=1), impressions=9)
    put_item(table, listener, "seen#d-1#ad-1#impression", now + timedelta(days=14))

    # When the operator asks for them
    secret = local_stack.physical_name("PseudonymKeySecret")
    assert main(["caps", "show", "l-cli", "--table", table, "--pseudonym-secret", secret]) == 0

    # Then the live counters are printed, sorted, and nothing else
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["COUNTER", "IMPRESSIONS"]
    assert [line.split() for line in lines[1:3]] == [
        ["cap#advertiser#adv-1#lifetime#all", "5"],
        ["cap#campaign#cmp-1#day#2026-11-26", "2"],
    ]
    assert lines[3] == f"2 live counters for l-cli (pseudonym {listener}) in {table}"


def test_caps_show_without_a_table_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FREQUENCY_CAPS_TABLE_NAME", raising=False)
    assert main(["caps", "show", "l-cli", "--pseudonym-secret", "s"]) == 2
    assert "FREQUENCY_CAPS_TABLE_NAME" in capsys.readouterr().err
