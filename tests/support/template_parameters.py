"""A template parameter that feeds a function's setting must carry that setting's default and bounds."""

from pydantic import BaseModel

from devstack.stack import DEFAULT_TEMPLATE
from devstack.template import load_template


def assert_parameter_feeds_setting(function: str, parameter_name: str, settings: type[BaseModel], field: str) -> None:
    """``parameter_name`` has ``settings.field``'s default, minimum and maximum, and reaches ``function`` as its
    environment variable (the field's name in capitals)."""
    template = load_template(DEFAULT_TEMPLATE)
    parameter = template["Parameters"][parameter_name]
    info = settings.model_fields[field]
    bounds = {type(rule).__name__: rule for rule in info.metadata}
    assert (parameter["Default"], parameter["MinValue"], parameter["MaxValue"]) == (
        info.default,
        bounds["Ge"].ge,
        bounds["Le"].le,
    )
    variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
    assert variables[field.upper()] == {"Ref": parameter_name}
