"""The local stack imports the `adserve` CLI before it sets the functions' POWERTOOLS_* variables, and Powertools
reads them when core.observability is first imported: so neither may import it at load (a handler would then
emit metrics with no namespace and fail)."""

import subprocess
import sys


def test_neither_the_cli_nor_the_local_stack_imports_observability_at_load() -> None:
    check = "import sys, adserve.cli.main, devstack.__main__; sys.exit('adserve.core.observability' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], check=False).returncode == 0


def test_the_adserve_command_logs_to_stderr_so_stdout_holds_only_its_output() -> None:
    # A command whose domain code logs a line (as forget does), run as the console script runs it
    script = (
        "import sys, adserve.cli.main as cli\n"
        "def command():\n"
        "    from adserve.core.observability import logger\n"
        "    logger.info('listener erased')\n"
        "    print('{\"erased\": true}')\n"
        "    return 0\n"
        "cli.main = command\n"
        "sys.exit(cli.console())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    assert done.stdout == '{"erased": true}\n'
    assert "listener erased" in done.stderr
