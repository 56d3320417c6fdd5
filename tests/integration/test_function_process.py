"""A function in a process of its own (``devstack.function_process.FunctionProcess``, what ``make demo`` runs):
warm between invocations, a fresh environment after a reset, the handler's errors and metrics brought back, and
two functions' invocations running at the same time, which the in-process runtime's shared API lock forbids; and
one function in several environments (``FunctionProcesses``) running that many invocations at once."""

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devstack.function_process import FunctionProcess, FunctionProcesses
from devstack.stack_description import FunctionDefinition

HANDLER = """
import json, os, time

def handler(event, context):
    if event.get("raise"):
        raise KeyError(event["raise"])
    started = time.time()
    time.sleep(event.get("sleep", 0))
    print(json.dumps({"_aws": {"Timestamp": 0, "CloudWatchMetrics": []}, "Answered": 1}))
    print("not a metric")
    return {
        "pid": os.getpid(),
        "setting": os.environ.get("FUNCTION_PROCESS_SETTING"),
        "echo": event.get("echo"),
        "function": context.function_name,
        "started": started,
        "ended": time.time(),
    }
"""


def definition(code_dir: Path, logical_id: str) -> FunctionDefinition:
    return FunctionDefinition(
        logical_id=logical_id,
        physical_name=f"test-{logical_id}",
        code_dir=code_dir,
        handler="app.handler",
        environment={},
        timeout_seconds=30,
        memory_mb=128,
    )


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(HANDLER)
    return tmp_path


@pytest.fixture
def metrics() -> list[tuple[str, list[dict[str, Any]]]]:
    return []


@pytest.fixture
def functions(code_dir: Path, metrics: list[tuple[str, list[dict[str, Any]]]]) -> Iterator[list[FunctionProcess]]:
    processes = [
        FunctionProcess(
            definition(code_dir, name),
            "us-east-1",
            "123456789012",
            lambda function, documents: metrics.append((function.logical_id, documents)),
        )
        for name in ("First", "Second")
    ]
    try:
        yield processes
    finally:
        for process in processes:
            process.reset()


def test_an_invocation_runs_in_a_warm_child_that_a_reset_replaces(
    functions: list[FunctionProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    function = functions[0]
    monkeypatch.setenv("FUNCTION_PROCESS_SETTING", "before")
    first = function.invoke({"echo": "one"})
    second = function.invoke({"echo": "two"})
    assert first["pid"] != os.getpid()
    assert second["pid"] == first["pid"]  # warm: the same environment
    assert (first["echo"], second["echo"]) == ("one", "two")
    assert first["setting"] == "before"
    assert first["function"] == "test-First"
    used = function.cpu_seconds()
    assert used > 0  # the child's interpreter start alone takes CPU
    monkeypatch.setenv("FUNCTION_PROCESS_SETTING", "after")
    function.reset()
    third = function.invoke({"echo": "three"})
    assert third["pid"] != first["pid"]  # a cold start, which reads os.environ again
    assert third["setting"] == "after"
    assert function.cpu_seconds() >= used  # the ended child's CPU is kept


def test_the_handlers_exception_is_raised_by_the_caller_and_the_process_stays_warm(
    functions: list[FunctionProcess],
) -> None:
    function = functions[0]
    pid = function.invoke({})["pid"]
    with pytest.raises(KeyError, match="boom") as raised:
        function.invoke({"raise": "boom"})
    assert any("in the function's process" in note for note in getattr(raised.value, "__notes__", []))
    assert function.invoke({})["pid"] == pid


def test_the_metrics_an_invocation_printed_reach_the_listener(
    functions: list[FunctionProcess], metrics: list[tuple[str, list[dict[str, Any]]]]
) -> None:
    functions[1].invoke({})
    assert metrics == [("Second", [{"_aws": {"Timestamp": 0, "CloudWatchMetrics": []}, "Answered": 1}])]


def test_two_functions_run_at_the_same_time(functions: list[FunctionProcess]) -> None:
    for function in functions:  # the cold starts, before the timed invocations
        function.invoke({})
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda function: function.invoke({"sleep": 2.0}), functions)
    assert first["pid"] != second["pid"]
    assert first["started"] < second["ended"]
    assert second["started"] < first["ended"]  # each began before the other ended: they overlapped


def test_a_function_with_two_environments_runs_two_invocations_at_once_each_in_its_own(code_dir: Path) -> None:
    function = FunctionProcesses(definition(code_dir, "Pooled"), "us-east-1", "123456789012", environments=2)
    try:
        with ThreadPoolExecutor(2) as pool:  # the cold starts
            cold = list(pool.map(lambda _: function.invoke({"sleep": 1.0}), range(2)))
        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(lambda echo: function.invoke({"sleep": 2.0, "echo": echo}), ["a", "b"])
        assert {first["pid"], second["pid"]} == {answer["pid"] for answer in cold}  # warm, two environments
        assert first["pid"] != second["pid"]
        assert (first["echo"], second["echo"]) == ("a", "b")
        assert first["started"] < second["ended"]
        assert second["started"] < first["ended"]  # they overlapped
        one_by_one = [function.invoke({})["pid"] for _ in range(4)]
        assert one_by_one[0] != one_by_one[1]  # each goes to the environment idle longest: they take turns
        assert one_by_one[0::2] == [one_by_one[0]] * 2
        assert function.cpu_seconds() == pytest.approx(
            sum(each.cpu_seconds() for each in function.environments), abs=0.05
        )
        function.reset()
        assert function.invoke({})["pid"] not in {first["pid"], second["pid"]}  # every environment ended
    finally:
        function.reset()
    with pytest.raises(ValueError, match="at least one"):
        FunctionProcesses(definition(code_dir, "None"), "us-east-1", "123456789012", environments=0)
