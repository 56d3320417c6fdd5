"""The layout's rules, read from the imports themselves (docs/architecture.md draws them).

Every module of the domain package lives in a wing; a wing may import only wings below it, so there are no
cycles and no upward imports; only `dal/` may import boto3 or botocore; handlers are decorators plus one call.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "shared" / "adserve"

# Lower numbers are lower wings. Wings on the same level do not import each other either.
WING_LEVELS = {
    "core": 0,
    "campaigns": 1,
    "models": 1,
    "http_api": 1,
    "privacy": 1,
    "delivery": 2,
    "outcomes": 3,
    "decisions": 4,
    "training": 5,
    "dal": 6,
    "wiring": 7,
    "cli": 8,
}
AWS_SDK_ROOTS = {"boto3", "botocore"}


def _modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py" or path.parent != PACKAGE)


def _wing(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0]


def _imported_modules(path: Path) -> list[str]:
    """Every module named by an import anywhere in the file, lazy and TYPE_CHECKING imports included."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _imported_wings(path: Path) -> set[str]:
    return {name.split(".")[1] for name in _imported_modules(path) if name.startswith("adserve.") and "." in name}


def test_every_domain_module_lives_in_a_known_wing() -> None:
    loose = [path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py"]
    unknown = {_wing(path) for path in _modules()} - set(WING_LEVELS)
    assert loose == [], f"modules outside any wing: {loose}"
    assert unknown == set(), f"wings missing from WING_LEVELS and docs/architecture.md: {unknown}"


@pytest.mark.parametrize("module", _modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_a_wing_imports_only_wings_below_it(module: Path) -> None:
    wing = _wing(module)
    upward = {
        other
        for other in _imported_wings(module)
        if other != wing and other in WING_LEVELS and WING_LEVELS[other] >= WING_LEVELS[wing]
    }
    assert upward == set(), f"{wing}/ (level {WING_LEVELS[wing]}) imports {sorted(upward)}"


@pytest.mark.parametrize("module", _modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_only_dal_talks_to_the_aws_sdk(module: Path) -> None:
    sdk = {name for name in _imported_modules(module) if name.split(".")[0] in AWS_SDK_ROOTS}
    if _wing(module) != "dal":
        assert sdk == set(), f"{module.relative_to(PACKAGE)} imports {sorted(sdk)}; only dal/ may"


@pytest.mark.parametrize("handler", sorted((ROOT / "functions").glob("*/app.py")), ids=lambda path: path.parent.name)
def test_handlers_are_decorators_plus_one_call(handler: Path) -> None:
    tree = ast.parse(handler.read_text())
    entry = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "lambda_handler")
    body = [
        statement
        for statement in entry.body
        if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))  # docstring
    ]
    assert len(body) == 1, f"{handler}: lambda_handler has {len(body)} statements"
    statement = body[0]
    assert isinstance(statement, ast.Return), f"{handler}: lambda_handler must return its one call"
    assert isinstance(statement.value, ast.Call), f"{handler}: lambda_handler must return its one call"
    assert entry.decorator_list, f"{handler}: lambda_handler has no decorators"
