"""The `creditgate` command line, one module per command group."""

from creditgate.cli._shared import CliError
from creditgate.cli.main import app, main

__all__ = ["CliError", "app", "main"]
