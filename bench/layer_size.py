"""Figure 4: unzipped size of each built function and layer (``sam build`` output in ``.aws-sam/build``).

Lambda's 250 MB limit applies to a function plus all of its layers, unzipped; the budget
(docs/performance.md) is 200 MB. Every function of template.yaml is measured with the layers it runs with (the
Globals' and its own); with any of them missing from the build, the largest is not known and its target is not
measured.
"""

import os
import subprocess
from pathlib import Path
from typing import Any

from bench.catalogs import REPO_ROOT
from devstack.stack import DEFAULT_TEMPLATE
from devstack.template import load_template, resources_of_type

BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
MB = 1_000_000


def function_layers(template_path: Path = DEFAULT_TEMPLATE) -> dict[str, tuple[str, ...]]:
    """Each function's logical id and the logical ids of the layers it runs with: the Globals' and its own (SAM
    joins lists of Globals and a resource)."""
    template = load_template(template_path)
    shared = ((template.get("Globals") or {}).get("Function") or {}).get("Layers") or []
    return {
        logical_id: tuple(layer["Ref"] for layer in (*shared, *function["Properties"].get("Layers", [])))
        for logical_id, function in resources_of_type(template, "AWS::Serverless::Function").items()
    }


def tree_bytes(path: Path) -> int:
    """Bytes of every regular file below ``path`` (symlinks not followed, as a zip stores them)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            file = Path(root, name)
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def _has_package(layer: Path, package: str) -> bool:
    return (
        any((site / package).is_dir() for site in layer.glob("python*/**/site-packages"))
        or (layer / "python" / package).is_dir()
    )


def build() -> tuple[bool, str]:
    """``make build`` in the repository; (succeeded, the tail of its output)."""
    done = subprocess.run(["make", "build"], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    return done.returncode == 0, (done.stdout + done.stderr)[-1500:]


def run(skip_build: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {"build_dir": str(BUILD_DIR.relative_to(REPO_ROOT))}
    if not BUILD_DIR.is_dir():
        if skip_build:
            return {**result, "skipped": "no .aws-sam/build and --skip-build given"}
        ok, output = build()
        result["built_now"] = True
        if not ok or not BUILD_DIR.is_dir():
            return {**result, "skipped": "make build failed", "build_output": output}
    functions = function_layers()
    artifacts = sorted({*functions, *(layer for layers in functions.values() for layer in layers)})
    sizes = {name: tree_bytes(BUILD_DIR / name) for name in artifacts if (BUILD_DIR / name).is_dir()}
    missing = [name for name in artifacts if name not in sizes]
    per_function = {
        name: round((sizes[name] + sum(sizes[layer] for layer in layers)) / MB, 2)
        for name, layers in functions.items()
        if name in sizes and all(layer in sizes for layer in layers)
    }
    return {
        **result,
        "unzipped_mb": {name: round(size / MB, 3) for name, size in sizes.items()},
        "function_plus_layers_mb": per_function,
        "largest_function": max(per_function, key=per_function.__getitem__) if per_function else None,
        "largest_function_plus_layers_mb": None if missing else max(per_function.values()),
        "all_artifacts_mb": round(sum(sizes.values()) / MB, 2),
        "missing": missing,
        "onnx_package_in_model_layer": (BUILD_DIR / "ModelLayer").is_dir()
        and _has_package(BUILD_DIR / "ModelLayer", "onnx"),
    }
