"""The service built during Lambda's init while the handler's last imports run, and only in Lambda."""

import threading

import pytest
from adserve.wiring.init_build import INIT_TYPE_VARIABLE, built_meanwhile

IN_LAMBDA = {INIT_TYPE_VARIABLE: "on-demand"}


def test_in_a_lambda_init_the_build_runs_while_the_block_runs_and_is_done_when_it_ends() -> None:
    # The block and the build meet at a barrier: a build run before or after the block would time out there
    together = threading.Barrier(2, timeout=30)
    built: list[str] = []

    def build() -> None:
        together.wait()
        built.append("service")

    with built_meanwhile(build, IN_LAMBDA):
        together.wait()
    assert built == ["service"]


def test_outside_lambda_nothing_is_built() -> None:
    built: list[str] = []
    with built_meanwhile(lambda: built.append("service"), {}):
        pass
    assert built == []


def test_a_failing_build_is_logged_and_left_to_the_first_request(caplog: pytest.LogCaptureFixture) -> None:
    def build() -> None:
        raise ConnectionError("secret unreachable")

    with built_meanwhile(build, IN_LAMBDA):
        pass
    [record] = [r for r in caplog.records if "building the service during init failed" in r.getMessage()]
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "secret unreachable"
