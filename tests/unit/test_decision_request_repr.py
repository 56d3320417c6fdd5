"""A decision request's repr names no listener: a debug message that formats a route's arguments (as
Powertools' resolver did on every request) would otherwise carry it to the logs."""

from collections.abc import Callable

import pytest
from adserve.decisions.api import DecisionRequest
from adserve.privacy.erasure import ErasureRequest


def test_a_request_repr_names_no_listener_or_session() -> None:
    # Given a request with a listener id and a session id
    request = DecisionRequest.model_validate(
        {
            "listener": {
                "id": "listener-private-7",
                "country": "SE",
                "device": "mobile",
                "session_id": "session-private-9",
                "context": {"content_type": "music"},
            },
            "placement": "audio_midroll",
            "max_ads": 2,
        }
    )
    # When it is formatted as a route's arguments are in a debug message, or with str, %s or an f-string
    text = f"Calling API Route Handler: { ({'request': request}) }"
    others = [str(request), "%s" % request, f"{request}", str(request.listener), repr(request.listener)]  # noqa: UP031
    # Then neither id appears, and the request is still recognisable
    for formatted in (text, *others):
        assert "listener-private-7" not in formatted
        assert "session-private-9" not in formatted
    assert "DecisionRequest(placement='audio_midroll', max_ads=2, explain=False)" in text
    assert str(request.listener) == "Listener(country='SE', device='mobile')"


@pytest.mark.parametrize("format_", [repr, str, lambda request: f"{request}", lambda request: "%s" % request])  # noqa: UP031
def test_an_erasure_request_formats_without_its_id(format_: Callable[[ErasureRequest], str]) -> None:
    request = ErasureRequest(listener_id="listener-private-7")
    assert format_(request) == "ErasureRequest(listener_id=<withheld>)"
