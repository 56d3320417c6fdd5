"""A template parameter that feeds a function's setting must carry that setting's default and bounds."""

from typing import Annotated, Any, cast

from pydantic import BaseModel, TypeAdapter

from devstack.stack import DEFAULT_TEMPLATE
from devstack.template import load_template

DECIDE_REQUIRED: dict[str, str] = {
    "CAMPAIGNS_TABLE_NAME": "campaigns",
    "PACING_TABLE_NAME": "pacing",
    "FREQUENCY_CAPS_TABLE_NAME": "caps",
    "OUTCOMES_QUEUE_URL": "https://sqs.example/queue",
    "LOGS_BUCKET_NAME": "logs",
    "SIGNING_KEY_SECRET_ID": "signing",
    "PSEUDONYM_KEY_SECRET_ID": "pseudonyms",
    "MODEL_DIR": "/opt/model",
    "MODELS_BUCKET_NAME": "models",
}
"""Decide's environment variables without a default: a settings test adds the ones it checks."""


def assert_parameter_feeds_setting(function: str, parameter_name: str, settings: type[BaseModel], field: str) -> None:
    """``parameter_name`` has ``settings.field``'s default, minimum and maximum (a field without bounds: a parameter
    without them), and reaches ``function`` as its environment variable (the field's name in capitals).

    The parameter's default is read as the function reads its environment variable, through the field's type: a
    String parameter's ``{}`` is the empty object a JSON setting defaults to."""
    template = load_template(DEFAULT_TEMPLATE)
    parameter = template["Parameters"][parameter_name]
    info = settings.model_fields[field]
    bounds = {type(rule).__name__: rule for rule in info.metadata}
    field_type = cast(Any, Annotated[info.annotation, *info.metadata])
    read: object = TypeAdapter(field_type).validate_python(parameter["Default"])
    assert read == info.get_default(call_default_factory=True)
    assert (parameter.get("MinValue"), parameter.get("MaxValue")) == (
        bounds["Ge"].ge if "Ge" in bounds else None,
        bounds["Le"].le if "Le" in bounds else None,
    )
    variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
    assert variables[field.upper()] == {"Ref": parameter_name}
