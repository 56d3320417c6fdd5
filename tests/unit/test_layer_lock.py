"""SharedLayer ships the packages the tests ran: its lock pins each one at the dev lock's version, the SDK included."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)", re.MULTILINE)


def _pins(lock: str) -> dict[str, str]:
    return {name.lower(): version for name, version in PIN.findall((ROOT / lock).read_text())}


def test_the_shared_layer_pins_what_the_dev_lock_pins_including_the_sdk() -> None:
    layer, dev = _pins("shared/layer.lock"), _pins("requirements/dev.lock")
    assert {"botocore", "pydantic", "aws-lambda-powertools"} <= layer.keys()
    assert not {"boto3", "s3transfer"} & layer.keys()  # no function imports them (test_cold_start_imports)
    assert {name: dev.get(name) for name in layer} == layer
