"""Figure 4: unzipped size of each built function and layer (``sam build`` output in ``.aws-sam/build``).

Lambda's 250 MB limit applies to a function plus all of its layers, unzipped; the budget
(docs/performance.md) is 200 MB.
"""

import os
import subprocess
from pathlib import Path
from typing import Any

from bench.catalogs import REPO_ROOT

BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
FUNCTIONS = ("DecideFunction", "CampaignsFunction")
LAYERS = ("SharedLayer", "ModelLayer")
MB = 1_000_000


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
    sizes = {name: tree_bytes(BUILD_DIR / name) for name in (*FUNCTIONS, *LAYERS) if (BUILD_DIR / name).is_dir()}
    missing = [name for name in (*FUNCTIONS, *LAYERS) if name not in sizes]
    layers = sum(sizes.get(name, 0) for name in LAYERS)
    per_function = {name: round((sizes[name] + layers) / MB, 2) for name in FUNCTIONS if name in sizes}
    return {
        **result,
        "unzipped_mb": {name: round(size / MB, 3) for name, size in sizes.items()},
        "function_plus_layers_mb": per_function,
        "largest_function_plus_layers_mb": max(per_function.values(), default=0.0),
        "all_artifacts_mb": round(sum(sizes.values()) / MB, 2),
        "missing": missing,
        "onnx_package_in_model_layer": (BUILD_DIR / "ModelLayer").is_dir()
        and _has_package(BUILD_DIR / "ModelLayer", "onnx"),
    }
