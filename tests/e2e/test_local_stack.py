"""`adserve-local run` as a developer runs it: a real process, real HTTP, then Ctrl-C."""

import json
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.__main__ import SAMPLE_DECISION
from tests.support.stack_process import ROOT, running_stack

SHUTDOWN_SECONDS = 60
"""Generous: the stack's own steps may each take their full bound on a loaded machine (pollers 5 s, a function's
process 10 s, the embedded endpoint 10 s); an idle one stops in about 2 s. 15 s failed once under CI's load."""


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with running_stack(tmp_path_factory.mktemp("adserve-local")) as running:
        yield running


@pytest.fixture(scope="module")
def api(server: tuple[subprocess.Popen[bytes], str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[1], timeout=10) as client:
        yield client


def test_the_demo_campaigns_are_seeded(api: httpx.Client) -> None:
    seeded = json.loads((ROOT / "examples" / "campaigns.json").read_text())
    response = api.get("/v1/campaigns")
    assert response.status_code == 200
    listed = {campaign["campaign_id"] for campaign in response.json()["campaigns"]}
    assert {campaign["campaign_id"] for campaign in seeded} <= listed


def test_a_new_campaign_can_be_put_and_read_back(api: httpx.Client) -> None:
    document: dict[str, Any] = json.loads((ROOT / "examples" / "campaigns.json").read_text())[0]
    document = {**document, "campaign_id": "cmp-e2e-new", "name": "End-to-end campaign"}
    document["creatives"] = [{**creative, "ad_id": f"e2e-{creative['ad_id']}"} for creative in document["creatives"]]
    assert api.put("/v1/campaigns/cmp-e2e-new", json=document).status_code == 200
    response = api.get("/v1/campaigns/cmp-e2e-new")
    assert response.status_code == 200
    assert response.json()["name"] == "End-to-end campaign"


def test_a_decision_returns_ranked_ads_with_tracking_urls_on_this_server(
    server: tuple[subprocess.Popen[bytes], str], api: httpx.Client
) -> None:
    response = api.post("/v1/decisions", json=SAMPLE_DECISION)
    assert response.status_code == 200, response.text
    ads = response.json()["ads"]
    assert ads
    assert [ad["rank"] for ad in ads] == list(range(1, len(ads) + 1))
    for ad in ads:
        assert 0 < ad["propensity"] <= 1
        assert ad["tracking"]
        assert all(url.startswith(f"{server[1]}/") for url in ad["tracking"].values())


def test_malformed_json_is_a_400_with_an_error_code(api: httpx.Client) -> None:
    response = api.post("/v1/decisions", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/nothing-here"), ("PATCH", "/v1/campaigns")])
def test_unknown_routes_are_404(api: httpx.Client, method: str, path: str) -> None:
    response = api.request(method, path)
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}


def test_bodies_over_ten_megabytes_are_refused_unread(server: tuple[subprocess.Popen[bytes], str]) -> None:
    host, port = server[1].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"POST /v1/decisions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 20000000\r\n\r\n"
        )
        status_line = connection.makefile("rb").readline()
    assert status_line.split()[1] == b"413"


def test_the_openapi_document_is_served(api: httpx.Client) -> None:
    response = api.get("/v1/openapi.json")
    assert response.status_code == 200
    assert "/v1/decisions" in response.json()["paths"]


def test_ctrl_c_stops_the_stack_cleanly(tmp_path: Path) -> None:
    # Given a running stack that has served a request
    with running_stack(tmp_path, "--no-seed") as (process, url):
        assert httpx.get(f"{url}/v1/campaigns", timeout=10).json() == {"campaigns": [], "next_cursor": None}
        # When the developer presses Ctrl-C
        process.send_signal(signal.SIGINT)
        # Then it shuts down and exits 0
        try:
            exit_code = process.wait(timeout=SHUTDOWN_SECONDS)
        except subprocess.TimeoutExpired:
            log = (tmp_path / "stderr").read_text(errors="replace")[-3000:]
            pytest.fail(f"still running {SHUTDOWN_SECONDS} s after Ctrl-C; its log ends with:\n{log}")
        assert exit_code == 0
    assert "stopped" in (tmp_path / "stderr").read_text()
