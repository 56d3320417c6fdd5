"""The real Decide handler module, loaded from its file, and the one seam the benchmark uses to feed it.

``functions/decide/app.py`` builds its DecisionService on first use through a cached ``service()`` function
that reads the environment and creates AWS clients. To time only our own code, the benchmark replaces that
module-level function with one returning a service wired to in-memory fakes (``inject_service``); everything
else (router, validation, middleware, serialisation, metrics flush) is the production path.
"""

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from adserve.decisions.service import DecisionService

from bench.catalogs import REPO_ROOT
from devstack.lambda_runtime import LocalLambdaContext

DECIDE_APP = REPO_ROOT / "functions" / "decide" / "app.py"


def load_module(path: Path = DECIDE_APP, name: str = "bench_decide_app") -> ModuleType:
    """Import the handler file as its own module, as Lambda's runtime would (a fresh copy per name)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def inject_service(module: ModuleType, service: DecisionService) -> None:
    """Benchmark-only: make the handler's ``service()`` return ``service`` instead of the production wiring."""

    def injected_service() -> DecisionService:
        return service

    setattr(module, "service", injected_service)  # noqa: B010 - a module attribute mypy cannot see


def lambda_context() -> LocalLambdaContext:
    return LocalLambdaContext(
        function_name="bench-decide",
        memory_limit_in_mb=1769,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:bench-decide",
        timeout_seconds=3,
    )


def check_response(response: Any, expected_ads: int) -> None:
    """Fail loudly if the benchmark is timing an error path instead of a decision."""
    status = response.get("statusCode") if isinstance(response, dict) else None
    if status != 200:
        raise RuntimeError(f"decide handler answered {status}: {response!r:.500}")
    ads = json.loads(response["body"])["ads"]
    if len(ads) != expected_ads:
        raise RuntimeError(f"decide handler served {len(ads)} ads, expected {expected_ads}")
