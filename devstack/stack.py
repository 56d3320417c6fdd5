"""LocalStack: the template's resources on an AWS endpoint and its functions callable in this process.

Used by ``adserve-local run`` and by the tests alike::

    with LocalStack.start("template.yaml") as stack:
        response = stack.invoke("CampaignsFunction", stack.http_event("GET", "/v1/campaigns"))
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Self

import boto3
from adserve.dal.aws_clients import secretsmanager_client
from adserve.dal.secret_keys import read_pseudonymizer
from adserve.privacy.pseudonyms import Pseudonymizer
from botocore.exceptions import BotoCoreError, ClientError

from devstack.api_events import http_api_event
from devstack.aws_endpoint import AwsEndpoint, credentials_environment
from devstack.environment import EnvironmentPatch, functions_environment
from devstack.event_source_mapping import EventSourceMappings
from devstack.function_process import FunctionProcesses
from devstack.lambda_runtime import FunctionRuntime, MetricsListener
from devstack.provisioning import create_resources
from devstack.routing import RouteMatch, Router
from devstack.stack_description import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_REGION,
    DEFAULT_STACK_NAME,
    StackDescription,
    describe_stack,
)

__all__ = ["DEFAULT_TEMPLATE", "LocalStack", "RouteNotFoundError"]

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


class RouteNotFoundError(LookupError):
    """No route of the template matches a method and path."""


class LocalStack:
    def __init__(
        self,
        endpoint: AwsEndpoint,
        description: StackDescription,
        env: dict[str, str],
        environ: EnvironmentPatch,
        on_metrics: MetricsListener | None = None,
        *,
        function_processes: Collection[str] | Mapping[str, int] = (),
    ) -> None:
        self._endpoint = endpoint
        self._environ = environ
        self.description = description
        self.env = env
        self.router = Router(description.routes)
        # The HTTP layer keeps the event being handled in process state (each function's router on its ``app``;
        # Powertools' resolvers did on a class): in Lambda each function has its own process, here the API
        # functions (Decide and Track, from the gateway's threads or the demo's listeners) share one. So the API
        # functions take turns, unless each runs in a process of its own; the queue consumers run beside them.
        environments = function_processes if isinstance(function_processes, Mapping) else {}
        self._processes = {
            logical_id: FunctionProcesses(
                function, description.region, description.account_id, on_metrics, environments.get(logical_id, 1)
            )
            for logical_id, function in description.functions.items()
            if logical_id in function_processes
        }
        api_lock = threading.Lock()
        api_functions = {route.function_id for route in description.routes}
        self._runtimes = {
            logical_id: FunctionRuntime(
                function,
                description.region,
                description.account_id,
                on_metrics,
                lock=api_lock if logical_id in api_functions else None,
            )
            for logical_id, function in description.functions.items()
            if logical_id not in function_processes
        }
        self._event_sources: EventSourceMappings | None = None

    @classmethod
    def start(
        cls,
        template_path: str | Path = DEFAULT_TEMPLATE,
        *,
        endpoint_url: str | None = None,
        stack_name: str = DEFAULT_STACK_NAME,
        event_sources: bool = False,
        visibility_timeout_override: int | None = None,
        on_metrics: MetricsListener | None = None,
        moto_process: bool = False,
        function_processes: Collection[str] | Mapping[str, int] = (),
        parameters: Mapping[str, str] | None = None,
    ) -> LocalStack:
        """Start (or reach) the endpoint, create the template's resources, export the functions' environment.

        Everything, the resource creation included, goes through boto3's own endpoint settings
        (``AWS_ENDPOINT_URL`` and the per-service ``AWS_ENDPOINT_URL_<SERVICE>``), as the handlers do.

        *event_sources* starts polling the functions' SQS queues right away (see :meth:`start_event_sources`);
        off by default, so tests that invoke handlers directly see the queues untouched.
        *visibility_timeout_override* (seconds) replaces every queue's VisibilityTimeout, so failed messages
        are retried, and dead-lettered, in seconds instead of the template's minutes.
        *on_metrics* receives each invocation's EMF documents instead of stdout (see ``FunctionRuntime``).
        *moto_process* runs the embedded moto in a child process (``AwsEndpoint.start_process``), so moto and the
        handlers each have a core: for long CPU-bound runs such as ``make demo``. Without an endpoint URL only.
        *function_processes* names functions to run each in a process of its own (``FunctionProcess``), as
        Lambda does: they take no turns with the API functions left here and use another core, at the cost of a
        pipe round trip per invocation (worth it for functions invoked with batches). Their modules are then not
        reachable from here (``handler_module``), so tests that look inside a handler leave them here. A mapping
        gives a function several execution environments (``FunctionProcesses``): that many invocations at once.
        *parameters* give template parameters other values than their defaults, as ``--parameter-overrides`` does.
        """
        template_path = Path(template_path).resolve()
        endpoint = (
            AwsEndpoint.start_process()
            if moto_process and not (endpoint_url or os.environ.get("AWS_ENDPOINT_URL"))
            else AwsEndpoint.start(endpoint_url)
        )
        environ = EnvironmentPatch()
        try:
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
            access = {
                "AWS_ENDPOINT_URL": endpoint.url,
                "AWS_REGION": region,
                "AWS_DEFAULT_REGION": region,
                **credentials_environment(embedded=endpoint.embedded, environ=os.environ),
            }
            environ.apply(access)
            session = boto3.session.Session()
            account_id = _account_id(session)
            planned = describe_stack(
                template_path, stack_name=stack_name, region=region, account_id=account_id, parameters=parameters
            )
            created = create_resources(planned, session, visibility_timeout_override=visibility_timeout_override)
            description = describe_stack(
                template_path,
                stack_name=stack_name,
                region=region,
                account_id=account_id,
                created=created,
                parameters=parameters,
            )
            env = {**functions_environment(description, template_path.parent), **access}
            environ.apply(env)
        except BaseException:
            environ.restore()
            endpoint.stop()
            raise
        stack = cls(endpoint, description, env, environ, on_metrics, function_processes=function_processes)
        if event_sources:
            try:
                stack.start_event_sources()
            except BaseException:
                stack.stop()
                raise
        return stack

    @property
    def endpoint_url(self) -> str:
        return self._endpoint.url

    @property
    def embedded_endpoint(self) -> bool:
        """Whether the endpoint is the in-process moto server (rather than AWS_ENDPOINT_URL's)."""
        return self._endpoint.embedded

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds the stack has used, by process: ``"stack"`` is this one's (handlers, pollers, in-process
        moto, and whatever else runs here), ``"moto"`` its moto child's, if it has one, and each function running
        in a process of its own under its logical id. Apart, so a run can say which of them a change moves."""
        return {
            "stack": time.process_time(),
            "moto": self._endpoint.child_cpu_seconds(),
            **{logical_id: process.cpu_seconds() for logical_id, process in self._processes.items()},
        }

    def physical_name(self, logical_id: str) -> str:
        return self.description.physical_name(logical_id)

    def pseudonyms(self) -> Pseudonymizer:
        """The pseudonyms this stack's Decide makes (its PseudonymKeySecret): to find a listener's counters."""
        return read_pseudonymizer(secretsmanager_client(), self.physical_name("PseudonymKeySecret"))

    def function(self, logical_id: str) -> FunctionRuntime | FunctionProcesses:
        return self._runtimes.get(logical_id) or self._processes[logical_id]

    def handler_module(self, logical_id: str) -> ModuleType:
        """The function's handler module, loaded once by this stack (e.g. to reach its ``app``); not with
        a function of ``function_processes``, which lives in another process."""
        return self._runtimes[logical_id].module

    def reset_function(self, logical_id: str) -> None:
        """Give the function a fresh execution environment, e.g. after a test changed an endpoint variable."""
        self.function(logical_id).reset()

    def match_route(self, method: str, raw_path: str) -> RouteMatch | None:
        return self.router.match(method, raw_path)

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Invoke the function's handler: one invocation at a time per function, and, in this process, one at a
        time among the functions that serve the API (see ``__init__``)."""
        return self.function(logical_id).invoke(event)

    def http_event(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        query: str = "",
        domain_name: str = "127.0.0.1:3000",
    ) -> tuple[str, dict[str, Any]]:
        """The function a request routes to and the API Gateway v2 event it would receive."""
        match = self.router.match(method, path)
        if match is None:
            raise RouteNotFoundError(f"no route for {method} {path}")
        headers = {"content-type": "application/json", **(headers or {})} if body is not None else headers
        event = http_api_event(
            method=method,
            raw_path=path,
            route_key=match.route.route_key,
            raw_query_string=query,
            headers=headers,
            path_parameters=match.path_parameters,
            body=body,
            domain_name=domain_name,
        )
        return match.route.function_id, event

    @property
    def event_sources(self) -> EventSourceMappings | None:
        """The running SQS pollers, or None while they are off."""
        return self._event_sources

    def start_event_sources(self) -> EventSourceMappings:
        """Poll each function's SQS queues and invoke it with batches, as Lambda's event source mappings do: as
        many batches at once as the function has execution environments (``function_processes``), at most the
        event's MaximumConcurrency."""
        if self._event_sources is None:
            environments = {logical_id: len(function.environments) for logical_id, function in self._processes.items()}
            self._event_sources = EventSourceMappings.for_stack(
                self.description, self.invoke, environments=environments
            )
            self._event_sources.start()
        return self._event_sources

    def stop_event_sources(self) -> None:
        """Stop the pollers (within about a second, unless a batch is still being handled)."""
        if self._event_sources is not None:
            self._event_sources.stop()
            self._event_sources = None

    def stop(self) -> None:
        """Stop the pollers, the functions' processes and the embedded endpoint, and restore the environment."""
        self.stop_event_sources()
        for process in self._processes.values():
            process.reset()
        self._environ.restore()
        self._endpoint.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def _account_id(session: boto3.session.Session) -> str:
    try:
        return str(session.client("sts").get_caller_identity()["Account"])
    except (BotoCoreError, ClientError):
        logger.debug("the endpoint does not answer STS; assuming account %s", DEFAULT_ACCOUNT_ID)
        return DEFAULT_ACCOUNT_ID
