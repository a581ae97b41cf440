"""Every fenced code block of README.md and docs/**/*.md runs as written against a live
`creditgate serve --demo`, so a page that drifts from creditgate fails the suite.

One server (SQLite, its database in the test's temporary directory, as `./creditgate.db`
beside where the blocks run) serves every block, in page order. Shell blocks (`bash`, `sh`,
`shell`) run in bash with `-euo pipefail` and the environment `serve --demo` tells the reader
to export (`CREDITGATE_BASE_URL`, `CREDITGATE_API_KEY`); `curl` fails on an HTTP error, as a
reader would notice one. Python blocks run in a subprocess with the same environment. A
block that cannot run by nature (an output sample, a fragment of a card, a command that
starts a server) is preceded by `<!-- not-run: reason -->`, and the reason is required.
A Python line `print(...)  # 9050: …` states what it prints: the block's output is checked.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import yaml

from creditgate.adapters.outbound import tls_context
from creditgate.api import Creditgate
from creditgate.server.demo import DEMO_CARD, DEMO_TENANT_ID, seed_demo
from creditgate.storage.throwaway import listening_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUNNERS = {"bash": "shell", "sh": "shell", "shell": "shell", "python": "python", "py": "python"}
NOT_RUN = re.compile(r"^<!--\s*not-run:(?P<reason>.*?)-->\s*$")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
# Shell blocks run under this prelude: a failing HTTP call fails the block.
SHELL_PRELUDE = 'curl() { command curl --fail-with-body --max-time 30 "$@"; }\n'
BLOCK_TIMEOUT_SECONDS = 60
# `print(...)  # 9050: what it means` in a Python block: the printed line is checked.
PRINTS = re.compile(r"^\s*print\(.*\)\s+# (?P<shown>[^:]+):\s", re.M)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    not_run: str | None  # the reason given, or None for a block that runs

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    found: list[Block] = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, info = opening["fence"], opening["info"].strip()
        end = i + 1
        while end < len(lines) and not (
            lines[end].strip().startswith(fence[0] * len(fence))
            and set(lines[end].strip()) == {fence[0]}
        ):
            end += 1
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marked = NOT_RUN.match(before.strip())
        found.append(
            Block(
                page=page,
                line=i + 1,
                language=info.split()[0].lower() if info else "",
                code="\n".join(lines[i + 1 : end]) + "\n",
                not_run=marked["reason"].strip() if marked else None,
            )
        )
        i = end + 1
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def test_every_block_runs_or_says_why_not() -> None:
    assert len(ALL_BLOCKS) > 10, "no code blocks found: is the page parser broken?"
    unmarked = [
        f"{b.where}: a ```{b.language or '(no language)'} block: make it run, or put"
        " `<!-- not-run: reason -->` on the line before it"
        for b in ALL_BLOCKS
        if b.not_run is None and b.language not in RUNNERS
    ]
    unexplained = [f"{b.where}: not-run without a reason" for b in ALL_BLOCKS if b.not_run == ""]
    assert not unmarked + unexplained, "\n".join(unmarked + unexplained)


def test_the_readme_card_is_part_of_the_demos_card() -> None:
    (card,) = [
        yaml.safe_load(b.code)
        for b in blocks_of(ROOT / "README.md")
        if b.language == "yaml" and b.code.startswith("# card.yaml")
    ]
    for key, value in card.items():
        if key != "actions":
            assert DEMO_CARD.get(key) == value, f"the demo's card has another {key}"
    for action, spec in card["actions"].items():
        for rule in spec["prices"]:
            assert rule in DEMO_CARD["actions"][action]["prices"], (action, rule)


def test_the_readme_guard_holds_what_it_says(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    # The SDK example: a guard for 1,200 input tokens and at most 800 output tokens.
    (held,) = re.findall(r"max_tokens=800\) as g: +# holds ([\d.]+) credits", readme)
    with Creditgate(f"sqlite:///{tmp_path / 'demo.db'}") as cg:
        seed_demo(cg)
        quote = cg.tenant(DEMO_TENANT_ID).quote(
            "chat.completion",
            {"model": "gpt-4.1"},
            {"input_tokens": 1_200, "output_tokens": 800},
        )
    assert quote.amount == Decimal(held) * 100, (quote.amount, held)


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    cwd: Path
    stdout: Path
    stderr: Path
    env: dict[str, str]  # what a reader's shell has after pasting the export lines

    def log(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITGATE_")}
    # The suite's sealing key (set by tests/conftest.py): an operator's setting, not the demo's.
    if "CREDITGATE_SECRET_KEYS" in os.environ:
        env["CREDITGATE_SECRET_KEYS"] = os.environ["CREDITGATE_SECRET_KEYS"]
    # `creditgate` and `python` as installed with the suite's interpreter.
    scripts = {sysconfig.get_path("scripts"), str(Path(sys.executable).parent)}
    env["PATH"] = os.pathsep.join([*sorted(scripts), env.get("PATH", "")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    cwd = tmp_path_factory.mktemp("readme")
    stdout, stderr = cwd / "serve.stdout", cwd / "serve.stderr"
    env = _environment()
    port = listening_port()
    command = [sys.executable, "-m", "creditgate", "serve", "--demo", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=stdout.open("wb"), stderr=stderr.open("wb")
    )
    server = Demo(process, cwd, stdout, stderr, env)
    try:
        deadline = time.monotonic() + 120  # a loaded machine
        while True:
            assert process.poll() is None, server.log()
            assert time.monotonic() < deadline, server.log()
            printed = dict(
                shlex.split(line.strip())[1].split("=", 1)
                for line in stdout.read_text().splitlines()
                if line.strip().startswith("export ")
            )
            if len(printed) == 2:
                try:
                    if (
                        httpx.get(
                            f"{printed['CREDITGATE_BASE_URL']}/readyz", verify=tls_context()
                        ).status_code
                        == 200
                    ):
                        break
                except httpx.TransportError:
                    pass
            time.sleep(0.2)
        server.env = {**env, **printed}
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_readme_shows_what_serve_demo_prints(demo: Demo) -> None:
    (sample,) = [
        b.code
        for b in blocks_of(ROOT / "README.md")
        if b.language == "text" and b.code.startswith("creditgate listening on")
    ]
    printed = demo.stdout.read_text()
    printed = printed.replace(demo.env["CREDITGATE_BASE_URL"], "http://127.0.0.1:8000")
    printed = printed.replace(demo.env["CREDITGATE_API_KEY"], "cg_…")
    assert printed.startswith(sample), printed


def _run(block: Block, demo: Demo, number: int) -> str | None:
    """None when the block ran; else what went wrong."""
    if RUNNERS[block.language] == "shell":
        command = ["bash", "-euo", "pipefail", "-c", SHELL_PRELUDE + block.code]
    else:
        script = demo.cwd / f"block_{number:02d}.py"
        script.write_text(block.code)
        command = [sys.executable, script.name]
    try:
        done = subprocess.run(
            command,
            cwd=demo.cwd,
            env=demo.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"still running after {BLOCK_TIMEOUT_SECONDS} s"
    if done.returncode != 0:
        return f"exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    shown = [m["shown"].strip() for m in PRINTS.finditer(block.code)]
    if shown and done.stdout.splitlines() != shown:
        return f"printed {done.stdout.splitlines()}, the page says {shown}"
    return None


def test_every_runnable_block_runs_against_the_demo(demo: Demo) -> None:
    runnable = [b for b in ALL_BLOCKS if b.not_run is None and b.language in RUNNERS]
    assert runnable
    failures: list[str] = []
    for number, block in enumerate(runnable):
        problem = _run(block, demo, number)
        if problem is not None:
            failures.append(f"{block.where} ({block.language}) failed: {problem}")
    assert demo.process.poll() is None, demo.log()
    assert not failures, "\n\n".join(failures)
