"""The template as the local stack sees it: physical names, functions with resolved environments, HTTP routes.

Pure: nothing here talks to AWS, so the unit tests can check that every resource of ``template.yaml`` is
covered and that every function's environment names the local resources.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.intrinsics import ResourceReferences, UnresolvableError, references_in, resolve
from devstack.template import Template, load_template, resources_of_type

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_REGION",
    "DEFAULT_STACK_NAME",
    "LOCAL_RESOURCE_TYPES",
    "FunctionDefinition",
    "HttpRoute",
    "LocalResource",
    "SqsEventSource",
    "StackDescription",
    "describe_stack",
]

DEFAULT_STACK_NAME = "adserve-local"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
BUCKET = "AWS::S3::Bucket"
SECRET = "AWS::SecretsManager::Secret"  # noqa: S105 - a resource type, not a password
FUNCTION = "AWS::Serverless::Function"
LOCAL_RESOURCE_TYPES = (TABLE, QUEUE, BUCKET, SECRET)
"""Resource types the local stack creates on the AWS endpoint."""

# The property each type takes an explicit physical name from.
_NAME_PROPERTY = {
    TABLE: "TableName",
    QUEUE: "QueueName",
    BUCKET: "BucketName",
    SECRET: "Name",
    FUNCTION: "FunctionName",
}


@dataclass(frozen=True)
class LocalResource:
    """A resource to create locally; its properties are still unresolved template values."""

    logical_id: str
    resource_type: str
    physical_name: str
    properties: Mapping[str, Any]
    depends_on: frozenset[str]


@dataclass(frozen=True)
class FunctionDefinition:
    logical_id: str
    physical_name: str
    code_dir: Path
    handler: str
    environment: Mapping[str, str]
    timeout_seconds: int
    memory_mb: int

    @property
    def module_file(self) -> Path:
        """The handler's source file: ``app.lambda_handler`` -> ``<CodeUri>/app.py``."""
        module, _, _ = self.handler.rpartition(".")
        return self.code_dir / (module.replace(".", "/") + ".py")

    @property
    def handler_name(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass(frozen=True)
class HttpRoute:
    """One ``HttpApi`` event: ``method`` is upper case or ``ANY``; ``path`` keeps its ``{param}`` segments."""

    method: str
    path: str
    function_id: str
    requires_iam: bool = False
    """Whether API Gateway demands a SigV4 (AWS_IAM) signature on this route."""

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True)
class SqsEventSource:
    """One ``SQS`` event of a function: the event source mapping Lambda would poll the queue with."""

    function_id: str
    event_name: str
    queue_id: str
    batch_size: int = 10
    maximum_batching_window_seconds: int = 0
    function_response_types: tuple[str, ...] = ()
    enabled: bool = True
    maximum_concurrency: int | None = None
    """``ScalingConfig.MaximumConcurrency``: the most batches Lambda invokes at once (None: no cap of its own)."""

    @property
    def reports_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types


@dataclass(frozen=True)
class StackDescription:
    stack_name: str
    region: str
    account_id: str
    resources: Mapping[str, LocalResource]
    functions: Mapping[str, FunctionDefinition]
    routes: tuple[HttpRoute, ...]
    references: Mapping[str, ResourceReferences]
    pseudo_parameters: Mapping[str, str] = field(default_factory=dict)
    sqs_event_sources: tuple[SqsEventSource, ...] = ()

    def physical_name(self, logical_id: str) -> str:
        if logical_id in self.resources:
            return self.resources[logical_id].physical_name
        if logical_id in self.functions:
            return self.functions[logical_id].physical_name
        raise KeyError(f"{logical_id} is neither a local resource nor a function of the template")

    def resolve(self, value: Any) -> Any:
        """*value* from the template with its intrinsics resolved against the local resources."""
        return resolve(value, self.references, self.pseudo_parameters)

    def creation_order(self) -> list[LocalResource]:
        """Local resources, each after those it refers to (a queue after its dead-letter queue)."""
        ordered: list[LocalResource] = []
        placed: set[str] = set()
        visiting: set[str] = set()

        def place(logical_id: str) -> None:
            if logical_id in placed:
                return
            if logical_id in visiting:
                raise UnresolvableError(f"circular reference through {logical_id}")
            visiting.add(logical_id)
            resource = self.resources[logical_id]
            for dependency in sorted(resource.depends_on & self.resources.keys()):
                place(dependency)
            visiting.discard(logical_id)
            placed.add(logical_id)
            ordered.append(resource)

        for logical_id in self.resources:
            place(logical_id)
        return ordered


def describe_stack(
    template_path: str | Path,
    *,
    stack_name: str = DEFAULT_STACK_NAME,
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    sqs_endpoint_url: str | None = None,
    created: Mapping[str, ResourceReferences] | None = None,
    parameters: Mapping[str, str] | None = None,
) -> StackDescription:
    """Describe *template_path* as a local stack.

    References are predicted (a queue's URL from *sqs_endpoint_url*, a secret's Ref is its name) unless
    *created* gives the real ones, which the stack passes once the resources exist. A parameter takes its default
    unless *parameters* gives a value (``parameter_values``).
    """
    template_path = Path(template_path)
    template = load_template(template_path)
    pseudo = {
        "AWS::StackName": stack_name,
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local",
    }
    resources = _local_resources(template, stack_name, pseudo)
    function_names = {
        logical_id: _physical_name(logical_id, FUNCTION, properties.get("Properties") or {}, stack_name, pseudo)
        for logical_id, properties in resources_of_type(template, FUNCTION).items()
    }
    sqs_endpoint = (sqs_endpoint_url or f"https://sqs.{region}.amazonaws.com").rstrip("/")
    references = {
        **parameter_values(template, parameters or {}),
        **{
            logical_id: _predicted_references(resource, region, account_id, sqs_endpoint)
            for logical_id, resource in resources.items()
        },
        **{
            logical_id: ResourceReferences(
                ref=name, attributes={"Arn": f"arn:aws:lambda:{region}:{account_id}:function:{name}"}
            )
            for logical_id, name in function_names.items()
        },
        **(created or {}),
    }
    functions = {
        logical_id: _function_definition(
            logical_id, name, template=template, template_dir=template_path.parent, references=references, pseudo=pseudo
        )
        for logical_id, name in function_names.items()
    }
    return StackDescription(
        stack_name=stack_name,
        region=region,
        account_id=account_id,
        resources=resources,
        functions=functions,
        routes=_http_routes(template),
        references=references,
        pseudo_parameters=pseudo,
        sqs_event_sources=_sqs_event_sources(template, resources, references, pseudo),
    )


def _local_resources(template: Template, stack_name: str, pseudo: Mapping[str, str]) -> dict[str, LocalResource]:
    resources: dict[str, LocalResource] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        resource_type = resource.get("Type") if isinstance(resource, dict) else None
        if resource_type not in LOCAL_RESOURCE_TYPES:
            continue
        properties = resource.get("Properties") or {}
        depends_on = resource.get("DependsOn") or []
        resources[logical_id] = LocalResource(
            logical_id=logical_id,
            resource_type=resource_type,
            physical_name=_physical_name(logical_id, resource_type, properties, stack_name, pseudo),
            properties=properties,
            depends_on=frozenset(references_in(properties))
            | frozenset([depends_on] if isinstance(depends_on, str) else depends_on),
        )
    return resources


def _physical_name(
    logical_id: str, resource_type: str, properties: Mapping[str, Any], stack_name: str, pseudo: Mapping[str, str]
) -> str:
    explicit = properties.get(_NAME_PROPERTY.get(resource_type, ""))
    if explicit is not None:
        return str(resolve(explicit, {}, pseudo))
    name = f"{stack_name}-{logical_id}"
    if resource_type == BUCKET:
        return name.lower()  # bucket names are lower case
    if resource_type == QUEUE and properties.get("FifoQueue") in (True, "true"):
        return f"{name}.fifo"
    return name


def _predicted_references(
    resource: LocalResource, region: str, account_id: str, sqs_endpoint: str
) -> ResourceReferences:
    name = resource.physical_name
    if resource.resource_type == TABLE:
        arn = f"arn:aws:dynamodb:{region}:{account_id}:table/{name}"
        return ResourceReferences(ref=name, attributes={"Arn": arn, "StreamArn": f"{arn}/stream/local"})
    if resource.resource_type == QUEUE:
        url = f"{sqs_endpoint}/{account_id}/{name}"
        arn = f"arn:aws:sqs:{region}:{account_id}:{name}"
        return ResourceReferences(ref=url, attributes={"Arn": arn, "QueueName": name, "QueueUrl": url})
    if resource.resource_type == BUCKET:
        return ResourceReferences(
            ref=name,
            attributes={
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
            },
        )
    # A secret's Ref is its ARN, which carries a random suffix only the service knows; the name is
    # accepted everywhere a SecretId is, so it stands in until the secret exists.
    return ResourceReferences(ref=name, attributes={"Id": name})


def parameter_values(template: Template, given: Mapping[str, str]) -> dict[str, ResourceReferences]:
    """Each parameter's value: *given*'s, else its default. A value the parameter's constraints refuse is a
    ValueError, as CloudFormation refuses such a deploy; so is a name the template lacks (``sam deploy`` would drop
    it silently: a typo here would run the default unnoticed)."""
    declared = template.get("Parameters") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValueError(f"the template has no parameter {', '.join(unknown)}")
    values = {name: str(parameter["Default"]) for name, parameter in declared.items() if "Default" in parameter}
    for name, value in given.items():
        refusals = _refusals(declared[name], value)
        if refusals:
            raise ValueError(f"{name}={value!r}: {declared[name].get('ConstraintDescription') or '; '.join(refusals)}")
        values[name] = value
    return {name: ResourceReferences(ref=value) for name, value in values.items()}


_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
"""A Number parameter's value as CloudFormation takes one: digits, not nan, inf, 1_000 or padding."""


def _refusals(parameter: Mapping[str, Any], value: str) -> list[str]:
    """Why CloudFormation would refuse *value* for *parameter*: its Type Number and bounds, its lengths, its allowed
    values and its pattern."""
    refusals = []
    if parameter.get("Type") == "Number":
        number = float(value) if _NUMBER.fullmatch(value) else None  # not float(): it reads nan, 1_000, " 3 "
        if number is None:
            refusals.append("not a number")
        if number is not None and "MinValue" in parameter and number < float(parameter["MinValue"]):
            refusals.append(f"under its MinValue {parameter['MinValue']}")
        if number is not None and "MaxValue" in parameter and number > float(parameter["MaxValue"]):
            refusals.append(f"over its MaxValue {parameter['MaxValue']}")
    if "MinLength" in parameter and len(value) < int(parameter["MinLength"]):
        refusals.append(f"shorter than its MinLength {parameter['MinLength']}")
    if "MaxLength" in parameter and len(value) > int(parameter["MaxLength"]):
        refusals.append(f"longer than its MaxLength {parameter['MaxLength']}")
    allowed = parameter.get("AllowedValues")
    if allowed is not None and value not in [str(option) for option in allowed]:
        refusals.append(f"not one of {', '.join(str(option) for option in allowed)}")
    pattern = parameter.get("AllowedPattern")
    if pattern is not None and re.fullmatch(pattern, value) is None:
        refusals.append(f"not matching {pattern}")
    return refusals


def _function_definition(
    logical_id: str,
    physical_name: str,
    *,
    template: Template,
    template_dir: Path,
    references: Mapping[str, ResourceReferences],
    pseudo: Mapping[str, str],
) -> FunctionDefinition:
    defaults = (template.get("Globals") or {}).get("Function") or {}
    properties = template["Resources"][logical_id].get("Properties") or {}
    code_uri = properties.get("CodeUri", defaults.get("CodeUri"))
    if not isinstance(code_uri, str):
        raise UnresolvableError(f"{logical_id}: the local stack needs a local CodeUri directory, got {code_uri!r}")
    variables = {
        **((defaults.get("Environment") or {}).get("Variables") or {}),
        **((properties.get("Environment") or {}).get("Variables") or {}),
    }
    environment: dict[str, str] = {}
    for name, value in variables.items():
        try:
            environment[name] = _env_string(resolve(value, references, pseudo))
        except UnresolvableError as error:
            raise UnresolvableError(f"{logical_id} environment variable {name}: {error}") from error
    return FunctionDefinition(
        logical_id=logical_id,
        physical_name=physical_name,
        code_dir=(template_dir / code_uri).resolve(),
        handler=str(properties.get("Handler", defaults.get("Handler", ""))),
        environment=environment,
        timeout_seconds=int(properties.get("Timeout", defaults.get("Timeout", 3))),
        memory_mb=int(properties.get("MemorySize", defaults.get("MemorySize", 128))),
    )


def _env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        raise UnresolvableError(f"resolves to a {type(value).__name__}, not a string: {value!r}")
    return str(value)


def _http_routes(template: Template) -> tuple[HttpRoute, ...]:
    routes: list[HttpRoute] = []
    for logical_id, function in resources_of_type(template, FUNCTION).items():
        events = (function.get("Properties") or {}).get("Events") or {}
        for event in events.values():
            if not isinstance(event, dict) or event.get("Type") != "HttpApi":
                continue
            properties = event.get("Properties") or {}
            method = str(properties.get("Method", "ANY")).upper()
            routes.append(
                HttpRoute(
                    method=method,
                    path=str(properties.get("Path", "$default")),
                    function_id=logical_id,
                    requires_iam=_requires_iam(template, properties),
                )
            )
    return tuple(routes)


def _requires_iam(template: Template, event_properties: Mapping[str, Any]) -> bool:
    """The event's own ``Auth.Authorizer`` if it names one (``NONE`` opts out), else its API's DefaultAuthorizer.

    The API is the ``HttpApi`` its ``ApiId`` refers to, or SAM's implicit API, configured by ``Globals.HttpApi``.
    """
    authorizer = (event_properties.get("Auth") or {}).get("Authorizer")
    if authorizer is not None:
        return bool(authorizer == "AWS_IAM")
    api_globals = (template.get("Globals") or {}).get("HttpApi") or {}
    api_auth = api_globals.get("Auth") or {}
    api_id = event_properties.get("ApiId")
    if isinstance(api_id, dict) and isinstance(api_id.get("Ref"), str):
        api = (template.get("Resources") or {}).get(api_id["Ref"]) or {}
        api_auth = (api.get("Properties") or {}).get("Auth") or api_auth
    return bool(api_auth.get("DefaultAuthorizer") == "AWS_IAM")


def _sqs_event_sources(
    template: Template,
    resources: Mapping[str, LocalResource],
    references: Mapping[str, ResourceReferences],
    pseudo: Mapping[str, str],
) -> tuple[SqsEventSource, ...]:
    """Every ``SQS`` event of every function, with Lambda's defaults for what it leaves out."""
    sources: list[SqsEventSource] = []
    for logical_id, function in resources_of_type(template, FUNCTION).items():
        events = (function.get("Properties") or {}).get("Events") or {}
        for event_name, event in events.items():
            if not isinstance(event, dict) or event.get("Type") != "SQS":
                continue
            properties = event.get("Properties") or {}
            queue_id = _queue_logical_id(properties.get("Queue"))
            if queue_id is None or getattr(resources.get(queue_id), "resource_type", None) != QUEUE:
                msg = f"{logical_id} event {event_name}: Queue must be !GetAtt <a queue of the template>.Arn"
                raise UnresolvableError(f"{msg}, got {properties.get('Queue')!r}")
            settings = {name: resolve(setting, references, pseudo) for name, setting in properties.items()}
            sources.append(
                SqsEventSource(
                    function_id=logical_id,
                    event_name=event_name,
                    queue_id=queue_id,
                    batch_size=int(settings.get("BatchSize", 10)),
                    maximum_batching_window_seconds=int(settings.get("MaximumBatchingWindowInSeconds", 0)),
                    function_response_types=tuple(str(kind) for kind in settings.get("FunctionResponseTypes") or ()),
                    enabled=settings.get("Enabled", True) not in (False, "false", "False"),
                    maximum_concurrency=_maximum_concurrency(settings.get("ScalingConfig")),
                )
            )
    return tuple(sources)


def _maximum_concurrency(scaling: Any) -> int | None:
    value = scaling.get("MaximumConcurrency") if isinstance(scaling, dict) else None
    return None if value is None else int(value)


def _queue_logical_id(queue: Any) -> str | None:
    """``OutcomesQueue`` from ``{"Fn::GetAtt": ["OutcomesQueue", "Arn"]}`` (or ``"OutcomesQueue.Arn"``)."""
    target = queue.get("Fn::GetAtt") if isinstance(queue, dict) else None
    if isinstance(target, str):
        target = target.split(".", 1)
    if isinstance(target, list) and len(target) == 2 and target[1] == "Arn" and isinstance(target[0], str):
        return target[0]
    return None
