"""Two API functions invoked at once in the local stack each see their own request, in one process or in two.

The HTTP layer keeps the event being handled on the process's state (Powertools' resolvers did on a class; our
router does on each function's ``app``). In Lambda every function has its own process; in the local stack Decide
and Track share one, and are invoked at once by the HTTP gateway's threads and the demo's listeners. Unguarded, a
decision once read a beacon's event (a 422: no body) and a beacon a decision's (a 422: no token).
"""

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack.demo import decision_body
from devstack.stack import DEFAULT_TEMPLATE, LocalStack

LISTENER = {
    "country": "US",
    "device": "mobile",
    "age_bucket": "25-34",
    "content_type": "music",
    "genre": "pop",
    "hour_of_day": "9",
    "placement": "audio_preroll",
}
TIMES = 1000


@pytest.fixture(scope="module", params=[(), ("TrackFunction", "RecordFunction")], ids=["in process", "as the demo"])
def stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """moto in its own process, as the demo runs it: the handlers' waits on it let the other thread in. The
    functions either take turns in this process, or Track runs in its own (``function_processes``, the demo's)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with LocalStack.start(
            DEFAULT_TEMPLATE, stack_name="adserve-turns", moto_process=True, function_processes=request.param
        ) as started:
            yield started


def statuses(stack: LocalStack, method: str, path: str, query: str = "", body: str | None = None) -> list[int]:
    answered = []
    for _ in range(TIMES):
        function_id, event = stack.http_event(method, path, query=query, body=body)
        answered.append(int(stack.invoke(function_id, event)["statusCode"]))
    return answered


def test_decisions_and_beacons_at_once_each_get_their_own_answer(stack: LocalStack) -> None:
    beacon = {"method": "GET", "path": "/v1/events/impression", "query": "t=abc.def"}  # a forged token: 403
    decision = {"method": "POST", "path": "/v1/decisions", "body": decision_body("listener-at-once", LISTENER)}
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can, so an unguarded overlap shows
    try:
        with ThreadPoolExecutor(2) as pool:
            beacons, decisions = pool.map(lambda request: statuses(stack, **request), [beacon, decision])
    finally:
        sys.setswitchinterval(switch_interval)
    assert set(beacons) == {403}
    assert set(decisions) == {200}
