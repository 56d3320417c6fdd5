"""The local stack imports the `adserve` CLI before it sets the functions' POWERTOOLS_* variables, and Powertools
reads them when core.observability is first imported: so neither may import it at load (a handler would then
emit metrics with no namespace and fail)."""

import subprocess
import sys


def test_neither_the_cli_nor_the_local_stack_imports_observability_at_load() -> None:
    check = "import sys, adserve.cli.main, devstack.__main__; sys.exit('adserve.core.observability' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], check=False).returncode == 0
