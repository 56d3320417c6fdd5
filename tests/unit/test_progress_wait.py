"""The tests' wait on progress: a slow but steady drain passes, a stall fails and says how far it got."""

import pytest

from tests.support.progress import Reading, wait_for_progress


class FakeTime:
    """A clock the waiter's sleeps advance, so minutes of waiting take no time."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def draining(time: FakeTime, start: int, per_second: float, floor: int = 0) -> "Reading":
    remaining = max(floor, round(start - per_second * time.now))
    return Reading(remaining, done=remaining == 0, note=f"DLQ {int(time.now) // 100}")


def test_a_queue_draining_slower_than_any_fixed_minute_is_waited_for() -> None:
    # 164 messages at one every 1.5 s: 246 s, four times the 60 s deadline that once failed on a busy machine.
    time = FakeTime()
    elapsed = wait_for_progress(
        lambda: draining(time, 164, 1 / 1.5),
        "drain",
        stall_seconds=60,
        bound_seconds=600,
        confirmations=2,
        clock=time.clock,
        sleep=time.sleep,
    )
    assert 246 <= elapsed <= 248


def test_a_stall_fails_after_the_stall_window_with_the_history() -> None:
    time = FakeTime()
    with pytest.raises(AssertionError) as failure:
        wait_for_progress(
            lambda: draining(time, 164, 1.0, floor=5),
            "outcomes queue drained",
            stall_seconds=60,
            bound_seconds=600,
            clock=time.clock,
            sleep=time.sleep,
        )
    message = str(failure.value)
    assert time.now == pytest.approx(159 + 60)
    assert message.startswith("outcomes queue drained: no progress for 60 s (219 s in, lowest 5)")
    samples = message.split("remaining: ")[1].split(", ")
    assert samples[0] == "0s: 164 DLQ 0"
    assert samples[1] == "10s: 154 DLQ 0"
    assert "160s: 5 DLQ 1" in samples
    assert samples[-1] == "219s: 5 DLQ 2"


def test_the_bound_ends_a_wait_that_creeps_forever() -> None:
    time = FakeTime()
    with pytest.raises(AssertionError, match=r"still going after 600 s"):
        wait_for_progress(
            lambda: Reading(10**6 - int(time.now), done=False),
            "creep",
            stall_seconds=60,
            bound_seconds=600,
            clock=time.clock,
            sleep=time.sleep,
        )
    assert time.now == 600


def test_done_must_hold_on_consecutive_reads() -> None:
    readings = iter([Reading(0, True), Reading(1, False), Reading(0, True), Reading(0, True)])
    time = FakeTime()
    elapsed = wait_for_progress(
        lambda: next(readings),
        "settle",
        stall_seconds=60,
        bound_seconds=600,
        confirmations=2,
        clock=time.clock,
        sleep=time.sleep,
    )
    assert elapsed == 3
