"""`python -m devstack run` as a child process, the way a developer starts it, for the end-to-end tests."""

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).parents[2]
STARTUP_SECONDS = 180
"""A bound, not a wait: readiness usually comes in seconds, but a start on two busy cores can take a minute."""
READY_PATH = "/v1/events/impression"
"""The beacon route is public, so it answers (4xx without a token) whether or not --auth is on."""


@contextmanager
def moto_server() -> Iterator[str]:
    """The local stack's moto (``devstack.aws_endpoint``) in a process of its own (no other test's state); its URL.

    Not a bare ``ThreadedMotoServer``: moto checks a transaction's conditions and applies its writes with no lock,
    so two redeliveries of one event racing on a busy machine could both pass "not counted yet" and both count,
    which DynamoDB never allows; the local stack's moto makes transactions atomic, as DynamoDB's are. Stops when
    its stdin closes.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.aws_endpoint"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # werkzeug's access log
        env=clean_environment(),
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().decode().strip()
        assert url.startswith("http://"), f"moto did not start: {url!r}"
        yield url
    finally:
        process.kill()
        process.wait()


def clean_environment() -> dict[str, str]:
    """What a fresh shell has: no AWS endpoint, credentials or function settings leaking from the tests.

    PYTHONPATH stays: tests run from another checkout (a git worktree) with this venv set it to their own code,
    which the stack must run too, not the venv's editable install of the first checkout."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "PYTHONPATH")
    return {name: os.environ[name] for name in keep if name in os.environ} | {"PYTHONUNBUFFERED": "1"}


def wait_for_api_url(process: subprocess.Popen[bytes], banner: Path) -> str:
    """The API URL from the banner (the port is picked by the OS), once the API answers at all."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"adserve-local exited with {process.returncode}"
        found = re.search(r"API:\s+(http://\S+)", banner.read_text(errors="replace"))
        if found:
            try:
                httpx.get(f"{found.group(1)}{READY_PATH}", timeout=5)
            except httpx.TransportError:
                pass
            else:
                return found.group(1)
        time.sleep(0.2)
    raise AssertionError(f"adserve-local was not ready within {STARTUP_SECONDS} s")


@contextmanager
def running_stack(
    logs: Path, *options: str, environment: Mapping[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`python -m devstack run --port 0 OPTIONS` in a clean environment; killed on exit if still running.

    Its stdout and stderr are kept in `logs`, and the process and the API's URL are yielded.
    """
    with (logs / "stdout").open("wb") as stdout, (logs / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "run", "--port", "0", *options],
            cwd=ROOT,
            env=clean_environment() | dict(environment or {}),
            stdout=stdout,
            stderr=stderr,
        )
        try:
            yield process, wait_for_api_url(process, logs / "stdout")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
