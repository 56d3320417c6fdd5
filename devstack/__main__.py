"""``adserve-local``: run the whole stack on this machine, or print the API's OpenAPI document.

adserve-local run [--port 3000] [--host 127.0.0.1] [--no-seed] [--template template.yaml]
adserve-local openapi [--template template.yaml]
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from adserve.cli import load_campaigns, read_campaigns
from adserve.dal.aws_clients import dynamodb_client
from adserve.dal.campaign_store import CampaignStore

from devstack.http_gateway import HttpGateway
from devstack.openapi_document import openapi_document, render
from devstack.stack import DEFAULT_TEMPLATE, LocalStack

__all__ = ["main"]

logger = logging.getLogger("devstack")

DEMO_CAMPAIGNS = DEFAULT_TEMPLATE.parent / "examples" / "campaigns.json"
SAMPLE_DECISION = {
    "listener": {
        "id": "l-1",
        "country": "SE",
        "device": "mobile",
        "context": {"content_type": "music", "genre": "pop"},
    },
    "placement": "audio_midroll",
    "max_ads": 3,
}


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    if arguments.command == "openapi":
        sys.stdout.write(render(openapi_document(arguments.template)))
        return 0
    return run(arguments.template, host=arguments.host, port=arguments.port, seed=not arguments.no_seed)


def run(template: Path, *, host: str, port: int, seed: bool) -> int:
    """Serve until SIGINT or SIGTERM, then stop the gateway and the endpoint; 0 on a clean shutdown."""
    _configure_logging()
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with LocalStack.start(template) as stack:
        seeded = _seed(stack) if seed else 0
        try:
            gateway = HttpGateway(stack, host=host, port=port)
        except OSError as error:
            print(f"adserve-local: cannot listen on {host}:{port}: {error}", file=sys.stderr)  # noqa: T201
            return 1
        gateway.start()
        print(_banner(stack, gateway, seeded), flush=True)  # noqa: T201
        stop.wait()
        gateway.stop()
    logger.info("stopped")
    return 0


def _seed(stack: LocalStack) -> int:
    """The demo catalog, written by the same code path as ``adserve campaigns load``."""
    store = CampaignStore(dynamodb_client(), stack.env["CAMPAIGNS_TABLE_NAME"])
    return load_campaigns(store, read_campaigns(DEMO_CAMPAIGNS))


def _banner(stack: LocalStack, gateway: HttpGateway, seeded: int) -> str:
    endpoint_kind = "embedded moto" if stack.embedded_endpoint else "external"
    width = max(len(logical_id) for logical_id in stack.description.resources)
    resources = [
        f"    {logical_id.ljust(width)}  {stack.description.references[logical_id].ref}"
        for logical_id in stack.description.resources
    ]
    routes = [f"    {route.route_key.ljust(34)} -> {route.function_id}" for route in stack.description.routes]
    sample = json.dumps(SAMPLE_DECISION, separators=(",", ":"))
    lines = [
        "adserve local stack",
        f"  API:          {gateway.url}",
        f"  AWS endpoint: {stack.endpoint_url} ({endpoint_kind})",
        "  Resources:",
        *resources,
        "  Routes:",
        *routes,
        f"  Seeded:       {seeded} demo campaigns" if seeded else "  Seeded:       nothing (--no-seed)",
        "  Try:",
        f"    curl -s {gateway.url}/v1/campaigns",
        f"    curl -s -X POST {gateway.url}/v1/decisions -H 'content-type: application/json' -d '{sample}'",
        "  Operator CLI against this stack:",
        f"    AWS_ENDPOINT_URL={stack.endpoint_url} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
        f"AWS_DEFAULT_REGION={stack.description.region} "
        f"CAMPAIGNS_TABLE_NAME={stack.env.get('CAMPAIGNS_TABLE_NAME', '')} adserve campaigns list",
        "  Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adserve-local", description="adserve's local stack and dev tooling")
    commands = parser.add_subparsers(dest="command", required=True)
    run_command = commands.add_parser("run", help="serve the template's HTTP routes on moto, seeded with demo data")
    run_command.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    run_command.add_argument("--port", type=int, default=3000, help="port to listen on; 0 picks a free one")
    run_command.add_argument("--no-seed", action="store_true", help="start with an empty campaign catalog")
    for command in (run_command, commands.add_parser("openapi", help="print the API's merged OpenAPI document")):
        command.add_argument(
            "--template", type=Path, default=DEFAULT_TEMPLATE, help="SAM template (default: the repo's)"
        )
    return parser


if __name__ == "__main__":
    sys.exit(main())
