"""``adserve-local``: run the whole stack on this machine, or print the API's OpenAPI document.

adserve-local run [--port 3000] [--host 127.0.0.1] [--no-seed] [--visibility-timeout 5] [--auth] [--raw-metrics]
                  [--template template.yaml]
adserve-local openapi [--template template.yaml]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from adserve.cli.main import load_campaigns, read_campaigns
from adserve.dal.aws_clients import dynamodb_client
from adserve.dal.campaign_store import CampaignStore

from devstack.http_gateway import HttpGateway
from devstack.metrics_output import readable_metrics
from devstack.openapi_document import openapi_document, render
from devstack.sigv4 import SigV4Verifier
from devstack.stack import DEFAULT_TEMPLATE, LocalStack
from devstack.stack_description import FunctionDefinition, parameter_values
from devstack.template import load_template

__all__ = ["main"]

logger = logging.getLogger("devstack")
metrics_logger = logging.getLogger("devstack.metrics")

DEFAULT_VISIBILITY_TIMEOUT = 5
"""Seconds: the template's 180 s would make every local retry of a failed SQS message wait three minutes."""
MAX_VISIBILITY_TIMEOUT = 43200  # SQS's maximum (12 h)
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
    "consent": {"personalise": True, "cap_frequency": True, "measure": True},
}


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    if arguments.command == "openapi":
        sys.stdout.write(render(openapi_document(arguments.template)))
        return 0
    return run(
        arguments.template,
        host=arguments.host,
        port=arguments.port,
        seed=not arguments.no_seed,
        visibility_timeout=arguments.visibility_timeout,
        auth=arguments.auth,
        raw_metrics=arguments.raw_metrics,
        pacing_every=arguments.pacing_every,
        parameters=dict(arguments.parameter),
    )


def run(
    template: Path,
    *,
    host: str,
    port: int,
    seed: bool,
    visibility_timeout: int | None = DEFAULT_VISIBILITY_TIMEOUT,
    auth: bool = False,
    raw_metrics: bool = False,
    pacing_every: float = 60.0,
    parameters: Mapping[str, str] | None = None,
) -> int:
    """Serve until SIGINT or SIGTERM, then stop the gateway, the SQS pollers and the endpoint; 0 on a clean shutdown.

    The functions' SQS event sources are polled as Lambda's event source mappings do; *visibility_timeout*
    (seconds, None for the template's) replaces every queue's, so failed messages come back in seconds.
    *auth* makes the routes the template protects with AWS_IAM demand SigV4 signatures made with the stack's
    credentials; each invocation's metrics are logged as one readable line unless *raw_metrics* keeps the EMF JSON.
    PacingFunction runs every *pacing_every* seconds as its ``rate(1 minute)`` schedule does in AWS (0: never);
    RetrainFunction's 6-hour schedule is not run locally. *parameters* override template parameters' defaults.
    """
    _configure_logging()
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    on_metrics = None if raw_metrics else _log_metrics
    try:
        parameter_values(load_template(template), parameters or {})  # before anything starts
    except ValueError as error:
        print(f"adserve-local: --parameter {error}", file=sys.stderr)  # noqa: T201
        return 2
    with LocalStack.start(
        template,
        event_sources=True,
        visibility_timeout_override=visibility_timeout,
        on_metrics=on_metrics,
        parameters=parameters,
    ) as stack:
        seeded = _seed(stack) if seed else 0
        verifier = _verifier(stack) if auth else None
        try:
            gateway = HttpGateway(stack, host=host, port=port, verifier=verifier)
        except OSError as error:
            print(  # noqa: T201
                f"adserve-local: cannot listen on {host}:{port}: {error}; choose another port with --port "
                f'(make run ARGS="--port 3001"; 0 picks a free one)',
                file=sys.stderr,
            )
            return 1
        gateway.start()
        if pacing_every > 0:
            threading.Thread(target=_pace, args=(stack, stop, pacing_every), name="pacing", daemon=True).start()
        print(_banner(stack, gateway, seeded, visibility_timeout), flush=True)  # noqa: T201
        stop.wait()
        gateway.stop()
    logger.info("stopped")
    return 0


def _pace(stack: LocalStack, stop: threading.Event, every: float) -> None:
    """PacingFunction's schedule: one step at once, then one every *every* seconds until *stop*."""
    while True:
        try:
            stack.invoke("PacingFunction", {"source": "aws.events", "detail-type": "Scheduled Event"})
        except Exception:
            logger.exception("pacing step failed")
        if stop.wait(every):
            return


def _log_metrics(function: FunctionDefinition, documents: list[dict[str, Any]]) -> None:
    service = function.environment.get("POWERTOOLS_SERVICE_NAME", function.logical_id)
    metrics_logger.info("%s", readable_metrics(service, documents))


def _verifier(stack: LocalStack) -> SigV4Verifier:
    """Accepts signatures made with the credentials the stack runs with (the dummy ones on embedded moto)."""
    access_key = stack.env.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_ACCESS_KEY_ID", "")
    secret = stack.env.get("AWS_SECRET_ACCESS_KEY") or os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    credentials = {access_key: secret} if access_key and secret else {}
    if not credentials:
        logger.warning(
            "--auth: no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment; every signed route refuses"
        )
    return SigV4Verifier(credentials, region=stack.description.region, account_id=stack.description.account_id)


def _seed(stack: LocalStack) -> int:
    """The demo catalog, written by the same code path as ``adserve campaigns load``."""
    store = CampaignStore(dynamodb_client(), stack.env["CAMPAIGNS_TABLE_NAME"])
    return load_campaigns(store, read_campaigns(DEMO_CAMPAIGNS))


def _banner(stack: LocalStack, gateway: HttpGateway, seeded: int, visibility_timeout: int | None = None) -> str:
    endpoint_kind = "embedded moto" if stack.embedded_endpoint else "external"
    width = max(len(logical_id) for logical_id in stack.description.resources)
    resources = [
        f"    {logical_id.ljust(width)}  {stack.description.references[logical_id].ref}"
        for logical_id in stack.description.resources
    ]
    signed = gateway.verifier is not None
    routes = [
        f"    {route.route_key.ljust(34)} -> {route.function_id}{'  (SigV4)' if signed and route.requires_iam else ''}"
        for route in stack.description.routes
    ]
    mappings = _event_source_lines(stack, visibility_timeout)
    sample = json.dumps(SAMPLE_DECISION, separators=(",", ":"))
    curl = "curl -s"
    if signed:
        key, secret = stack.env.get("AWS_ACCESS_KEY_ID", ""), stack.env.get("AWS_SECRET_ACCESS_KEY", "")
        curl += f" --aws-sigv4 aws:amz:{stack.description.region}:execute-api --user {key}:{secret}"
    lines = [
        "adserve local stack",
        f"  API:          {gateway.url}",
        f"  AWS endpoint: {stack.endpoint_url} ({endpoint_kind})",
        "  Resources:",
        *resources,
        "  Routes:",
        *routes,
        *mappings,
        f"  Seeded:       {seeded} demo campaigns" if seeded else "  Seeded:       nothing (--no-seed)",
        "  Auth:         SigV4 (AWS_IAM) where the template asks for it (--auth)" if signed else "  Auth:         none",
        "  Try:",
        f"    {curl} {gateway.url}/v1/campaigns",
        f"    {curl} -X POST {gateway.url}/v1/decisions -H 'content-type: application/json' -d '{sample}'",
        "  Operator CLI against this stack: in another shell, paste",
        f"    export {_cli_environment(stack, gateway.url)}",
        "    then e.g. .venv/bin/adserve campaigns list",
        "  Ctrl-C to stop.",
    ]
    return "\n".join(lines)


CLI_VARIABLES = (
    "CAMPAIGNS_TABLE_NAME",
    "DELIVERY_TABLE_NAME",
    "PACING_TABLE_NAME",
    "FREQUENCY_CAPS_TABLE_NAME",
    "PSEUDONYM_KEY_SECRET_ID",
    "LOGS_BUCKET_NAME",
    "MODELS_BUCKET_NAME",
    "PACING_MAX_AGE_SECONDS",
    "RANKING_CURRENCY",
    "EXCHANGE_RATES",
    "PRE_PSEUDONYM_LOGS",
)
"""What the ``adserve`` CLI reads of the functions' environment: with these, every command finds this stack, and
``adserve delivery`` judges a report as the deployed functions do (the pacing max age, the rates)."""


def _cli_environment(stack: LocalStack, api_url: str) -> str:
    """The variables that point the ``adserve`` CLI at this stack's endpoint, resources and API, as one line."""
    names = {name: stack.env[name] for name in CLI_VARIABLES if name in stack.env}
    variables = {
        "AWS_ENDPOINT_URL": stack.endpoint_url,
        "AWS_ACCESS_KEY_ID": stack.env.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": stack.env.get("AWS_SECRET_ACCESS_KEY", "testing"),
        "AWS_DEFAULT_REGION": stack.description.region,
        **names,
        "ADSERVE_API_URL": api_url,
    }
    return " ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items())


def _event_source_lines(stack: LocalStack, visibility_timeout: int | None) -> list[str]:
    sources = stack.description.sqs_event_sources
    if not sources:
        return []
    timeout = "the template's" if visibility_timeout is None else f"{visibility_timeout} s (--visibility-timeout)"
    lines = [f"  Event sources (SQS, queue visibility timeout {timeout}):"]
    for source in sources:
        settings = f"batch {source.batch_size}, window {source.maximum_batching_window_seconds} s"
        if source.function_response_types:
            settings += ", " + ", ".join(source.function_response_types)
        if not source.enabled:
            settings += ", disabled"
        lines.append(f"    {source.queue_id.ljust(32)} -> {source.function_id} ({settings})")
    return lines


def _parameter(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _visibility_timeout(value: str) -> int | None:
    if value == "template":
        return None
    try:
        seconds = int(value)
    except ValueError:
        seconds = -1
    if not 0 <= seconds <= MAX_VISIBILITY_TIMEOUT:
        raise argparse.ArgumentTypeError(f"expected 0-{MAX_VISIBILITY_TIMEOUT} seconds or 'template', got {value!r}")
    return seconds


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
    run_command.add_argument(
        "--auth",
        action="store_true",
        help="demand SigV4 signatures (the stack's credentials, service execute-api) where API Gateway would",
    )
    run_command.add_argument(
        "--pacing-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="run PacingFunction every SECONDS, as its rate(1 minute) schedule does (0: never; default 60)",
    )
    run_command.add_argument(
        "--raw-metrics",
        action="store_true",
        help="print the handlers' EMF metrics JSON to stdout as Lambda does, instead of one readable log line each",
    )
    run_command.add_argument(
        "--visibility-timeout",
        type=_visibility_timeout,
        default=DEFAULT_VISIBILITY_TIMEOUT,
        metavar="SECONDS",
        help=(
            f"every queue's visibility timeout, so messages a function failed are retried (and dead-lettered) "
            f"in seconds; 'template' keeps the template's (default {DEFAULT_VISIBILITY_TIMEOUT})"
        ),
    )
    run_command.add_argument(
        "--parameter",
        type=_parameter,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter's value instead of its default, as sam deploy --parameter-overrides gives one "
        "(repeatable), e.g. --parameter 'ExchangeRates={\"EUR\": 1.08}'",
    )
    for command in (run_command, commands.add_parser("openapi", help="print the API's merged OpenAPI document")):
        command.add_argument(
            "--template", type=Path, default=DEFAULT_TEMPLATE, help="SAM template (default: the repo's)"
        )
    return parser


if __name__ == "__main__":
    sys.exit(main())
