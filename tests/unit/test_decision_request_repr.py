"""A decision request's repr names no listener: a debug message that formats a route's arguments (as
Powertools' resolver did on every request) would otherwise carry it to the logs."""

from adserve.decisions.api import DecisionRequest


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
    # When it is formatted as a route's arguments are in a debug message
    text = f"Calling API Route Handler: { ({'request': request}) }"
    # Then neither id appears, and the request is still recognisable
    assert "listener-private-7" not in text
    assert "session-private-9" not in text
    assert "DecisionRequest(placement='audio_midroll', max_ads=2, explain=False)" in text
