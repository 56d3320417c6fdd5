"""The export line ``make run`` prints for the operator CLI, against the stack it describes."""

import shlex
from typing import Any

from adserve.cli.delivery import deployment_rates, pacing_max_age

from devstack.__main__ import _cli_environment


def test_the_cli_environment_judges_reports_as_the_deployed_functions_do(local_stack: Any) -> None:
    # Given the line the local stack prints for the CLI
    line = _cli_environment(local_stack, "http://127.0.0.1:3000")
    # When a shell reads it
    variables = dict(word.split("=", 1) for word in shlex.split(line))
    # Then it carries the functions' pacing max age and rates, as they are (JSON quoted for the shell)
    for name in ("PACING_MAX_AGE_SECONDS", "RANKING_CURRENCY", "EXCHANGE_RATES"):
        assert variables[name] == local_stack.env[name]
    assert pacing_max_age(variables["PACING_MAX_AGE_SECONDS"]).total_seconds() == float(
        local_stack.env["PACING_MAX_AGE_SECONDS"]
    )
    rates = deployment_rates(variables)
    assert rates is not None
    assert rates.currency == local_stack.env["RANKING_CURRENCY"]
