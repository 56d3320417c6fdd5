"""botocore's model files for the services adserve calls, prepared so that a cold start creates its clients faster.

Creating a client parses botocore's JSON: the service's API model and endpoint rules, the partitions and the
endpoints of every AWS service (1.25 MB of JSON, read whole for any client). The SharedLayer ships its own botocore, the
one the tests ran (``shared/layer.lock``), and its build runs ``prepare`` on that botocore's data: the services
adserve never calls are removed, the endpoints file keeps only the services that are left, and beside every JSON
file kept goes a pickle of what parsing it gives, which loads several times faster. ``aws_clients`` reads the
pickle where there is one and the JSON elsewhere (a development install). The pickles are as trusted as the
layer's code: written by its build, read only from the layer.

``python -m adserve.dal.sdk_models DATA_DIR`` prepares DATA_DIR in place (the layer's Makefile).
"""

import gzip
import json
import os
import pickle
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

SERVICES: Final = ("dynamodb", "s3", "secretsmanager", "sqs")
"""The services adserve creates clients for (``aws_clients``); botocore lists no other as available."""

PARSED_SUFFIX: Final = ".pickle"
_OPENERS: Final[dict[str, Callable[..., Any]]] = {".json": open, ".json.gz": gzip.open}
"""botocore's JSON files, plain or gzipped, in the order botocore looks for them."""


def read_json(file_path: str) -> Any:
    """The first of ``file_path`` + ``.json`` or ``.json.gz`` that exists, parsed into plain dicts; None if neither."""
    for suffix, opener in _OPENERS.items():
        if os.path.isfile(file_path + suffix):
            with opener(file_path + suffix, "rb") as file:
                return json.loads(file.read().decode("utf-8"))
    return None


def read_parsed(file_path: str) -> Any:
    """What ``prepare`` stored for ``file_path`` (a botocore data path without its extension); None if nothing."""
    try:
        with open(file_path + PARSED_SUFFIX, "rb") as file:
            return pickle.load(file)  # noqa: S301 - written by the layer's own build, read from the read-only layer
    except FileNotFoundError:
        return None


def _stem(path: Path) -> Path | None:
    """``path`` without its JSON extension, or None for a file that is not a botocore JSON file."""
    for suffix in _OPENERS:
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return None


def _endpoint_prefixes(data_dir: Path) -> set[str]:
    """The names the endpoints file knows the kept services by (each model's ``endpointPrefix``)."""
    prefixes = set(SERVICES)
    for model in data_dir.glob("*/*/service-2.json*"):
        stem = _stem(model)
        if stem is not None:
            prefixes.add(read_json(str(stem))["metadata"]["endpointPrefix"])
    return prefixes


def prepare(data_dir: Path) -> list[Path]:
    """In place: drop every service directory but SERVICES', trim the endpoints file to them, write a pickle beside
    every JSON file left. Returns the pickles written."""
    for entry in data_dir.iterdir():
        if entry.is_dir() and entry.name not in SERVICES:
            shutil.rmtree(entry)
    prefixes = _endpoint_prefixes(data_dir)
    written = []
    for path in sorted(data_dir.rglob("*.json*")):
        stem = _stem(path)
        if stem is None:
            continue
        data = read_json(str(stem))
        if stem.name == "endpoints" and stem.parent == data_dir:
            for partition in data["partitions"]:
                partition["services"] = {k: v for k, v in partition["services"].items() if k in prefixes}
            with _OPENERS[path.name[len(stem.name) :]](path, "wb") as file:  # the JSON says what the pickle holds
                file.write(json.dumps(data, indent=1).encode())
        target = stem.with_name(stem.name + PARSED_SUFFIX)
        target.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    import argparse  # noqa: PLC0415 - a build step's; Decide's cold start imports this module, not argparse

    parser = argparse.ArgumentParser(prog="python -m adserve.dal.sdk_models", description=__doc__.split("\n")[0])
    parser.add_argument("data_dir", type=Path, help="a botocore package's data directory, changed in place")
    args = parser.parse_args(argv)
    written = prepare(args.data_dir)
    print(f"{len(written)} botocore files parsed ahead for {', '.join(SERVICES)} in {args.data_dir}")  # noqa: T201 - build step


if __name__ == "__main__":
    main()
