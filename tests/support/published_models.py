"""Published model files for in-memory model stores: the bootstrap model under another version label."""

import hashlib
import json
from pathlib import Path
from typing import Any

BOOTSTRAP = Path(__file__).resolve().parents[2] / "layers" / "model" / "bootstrap"
BOOTSTRAP_VERSION: str = json.loads((BOOTSTRAP / "manifest.json").read_text())["version"]


def model_files(label: str, /, model_bytes: bytes | None = None, **manifest_changes: Any) -> dict[str, bytes]:
    """The bootstrap model relabelled as ``label``, its sha256 recomputed unless the changes set one."""
    body = (BOOTSTRAP / "model.onnx").read_bytes() if model_bytes is None else model_bytes
    manifest = json.loads((BOOTSTRAP / "manifest.json").read_text())
    manifest.update(version=label, sha256=hashlib.sha256(body).hexdigest(), parent_version=BOOTSTRAP_VERSION)
    manifest.update(manifest_changes)
    return {"model.onnx": body, "manifest.json": json.dumps(manifest).encode()}
