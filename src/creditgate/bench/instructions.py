"""Instructions per authorize + settle pair, counted by valgrind, against the floor's.

CPU time on a shared machine moves by a quarter from one minute to the next (BENCHMARKS.md),
so a change of a few percent in what a pair costs cannot be seen in `bench http --floor` or
`bench.stages`. The instructions a process executes do not depend on what else the machine
runs. Here each stage of `bench.stages` runs in a process of its own under valgrind's
callgrind, twice, with a few pairs and with many; the difference of the two counts, divided
by the difference of the pairs, is what one pair executes (start-up, imports and set-up
cancel out). The stages:

- `floor: db` and `creditgate: db`: the database side alone (`Floor.authorize` / `.settle`;
  `TenantLedger.authorize` / `.settle`);
- `floor: app` and `creditgate: app`: the pair through the ASGI application, in-process,
  the database work on the application's own threads.

What this leaves out: the kernel (sockets, wake-ups), the database server, and what a thread
costs when it runs on another CPU; `bench http --floor` measures those. What it counts is
the Python each pair runs, and the C under it, in user space: the work a change to
creditgate's own code changes. valgrind runs one thread at a time, so a stage's count does
not depend on how its threads were scheduled either. Counts move by about 1% between runs of
the same tree (the database's answers, hash seeds, the garbage collector's timing).

    python -m creditgate.bench.instructions [--db URL] [--pairs 20,120] [--before PYTHONPATH]
        [--json]

`--before` also counts creditgate's two stages from another tree (an earlier commit's
`src/` and `sdk/python/src`), as `before: db` and `before: app`. Needs `valgrind` (Debian's
package).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

STAGES = ("floor: db", "floor: app", "creditgate: db", "creditgate: app")
WARM = 20  # pairs run before the counted ones in every process (statements prepared, caches)
_COLLECTED = re.compile(rb"Collected : (\d+)")
# What runs a stage's process and reports its count on stderr, as callgrind does.
CALLGRIND = ("--tool=callgrind", "--callgrind-out-file=/dev/null")


async def _pairs(stage: str, pairs: int, setup: dict[str, Any], offset: int) -> None:
    """Run `pairs` pairs of `stage` after the warm-up, in this process, starting from the
    customer at `offset` (processes counted at once start on different customers, so that
    they seldom meet on one balance row)."""
    customers = setup["customers"]
    offset %= len(customers)
    async with _stage_pair(stage, setup, customers[offset:] + customers[:offset]) as pair:
        for i in range(WARM + pairs):
            await pair(i)


@asynccontextmanager
async def _stage_pair(
    stage: str, setup: dict[str, Any], customers: list[str]
) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
    """`stage`'s pair (`bench.stages`' own), with what it runs on set up and torn down."""
    from creditgate.bench import floor
    from creditgate.bench.stages import app_pair, floor_db_pair, ledger_pair
    from creditgate.storage.throwaway import libpq_dsn

    if stage.startswith("floor"):
        the_floor = floor.Floor(libpq_dsn(setup["floor_url"]), 10)
        floor._floor = the_floor  # what the floor's lifespan sets in a served worker
        try:
            if stage == "floor: db":
                yield floor_db_pair(the_floor, customers)
            else:
                yield app_pair(floor.app, setup["floor_key"], customers)
        finally:
            the_floor.executor.shutdown()
        return
    from creditgate.api import Creditgate, TenantLedger
    from creditgate.server.app import create_app

    cg = Creditgate(setup["cg_url"])
    try:
        if stage.endswith(": db"):
            yield ledger_pair(TenantLedger(cg, cg.authenticate(setup["key"]).tenant_id), customers)
        else:
            app = create_app(cg)
            async with app.router.lifespan_context(app):
                yield app_pair(app, setup["key"], customers)
    finally:
        cg.close()


def _valgrind() -> list[str]:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    return [valgrind, *CALLGRIND]


def _count(
    stage: str,
    pairs: int,
    setup_file: str,
    pythonpath: str | None,
    counter: list[str],
    offset: int,
) -> int:
    """The instructions a process running `pairs` pairs of `stage` executes, all told, as
    `counter` (valgrind) reports them."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    command = [
        *counter,
        sys.executable,
        "-c",
        # This file by its path: a `--before` tree may not have it. (Not as a script, whose
        # folder would come first on the path, where `bench/http.py` would be `http`.)
        f"import runpy; runpy.run_path({os.path.abspath(__file__)!r}, run_name='__main__')",
        "--run",
        stage.replace("before", "creditgate"),
        str(pairs),
        setup_file,
        str(offset),
    ]
    done = subprocess.run(command, env=env, capture_output=True, check=False)
    found = _COLLECTED.findall(done.stderr)
    if done.returncode != 0 or not found:
        tail = done.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"{stage} ({pairs} pairs) failed under valgrind:\n{tail}")
    return int(found[-1])


def run_instructions(
    server: str | None,
    *,
    few: int = 20,
    many: int = 120,
    before: str | None = None,
    parallel: int = 2,
    counter: list[str] | None = None,
) -> dict[str, Any]:
    """Instructions per pair of each stage, on fresh databases of the PostgreSQL server at
    `server` (else the one in the environment, else a throwaway cluster)."""
    if not 1 <= few < many:
        raise ValueError(f"the two runs' pairs must be 1 <= few < many, not {few} and {many}")
    from creditgate.bench import floor
    from creditgate.bench.http import setup_creditgate
    from creditgate.bench.stages import GRANT, _databases
    from creditgate.bench.target import bench_server
    from creditgate.storage.throwaway import libpq_dsn

    stages = list(STAGES) + (["before: db", "before: app"] if before else [])
    count_with = counter if counter is not None else _valgrind()
    with bench_server(server) as found, _databases(found) as (cg_url, floor_url):
        key, customers, _, _ = setup_creditgate(cg_url)
        floor_key = floor.prepare(libpq_dsn(floor_url), customers, GRANT)
        setup = {
            "key": key,
            "customers": customers,
            "floor_key": floor_key,
            "cg_url": cg_url,
            "floor_url": floor_url,
        }
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(setup, f)
        runs = [(stage, n) for stage in stages for n in (few, many)]
        jobs = [
            (stage, n, f.name, before if stage.startswith("before") else None, count_with, 37 * at)
            for at, (stage, n) in enumerate(runs)
        ]
        try:
            with ThreadPoolExecutor(parallel) as pool:
                counts = list(pool.map(lambda job: _count(*job), jobs))
        finally:
            os.unlink(f.name)
    total = dict(zip(runs, counts, strict=True))
    per_pair = {s: round((total[(s, many)] - total[(s, few)]) / (many - few)) for s in stages}
    result: dict[str, Any] = {
        "pairs": [few, many],
        "instructions_per_pair": per_pair,
        "ratio_to_floor": {
            part: round(per_pair[f"creditgate: {part}"] / per_pair[f"floor: {part}"], 2)
            for part in ("db", "app")
        },
    }
    if before:
        result["ratio_to_before"] = {
            part: round(per_pair[f"creditgate: {part}"] / per_pair[f"before: {part}"], 3)
            for part in ("db", "app")
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=None, help="a PostgreSQL server URL to make databases on")
    parser.add_argument("--pairs", default="20,120", help="the two runs' pairs, comma-separated")
    parser.add_argument("--before", default=None, help="PYTHONPATH of a creditgate to count too")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--run", nargs=4, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run is not None:  # one stage, in the process valgrind counts
        stage, pairs, setup_file, offset = args.run
        with open(setup_file) as f:
            asyncio.run(_pairs(stage, int(pairs), json.load(f), int(offset)))
        return
    try:
        few, many = (int(n) for n in args.pairs.split(","))
        result = run_instructions(args.db, few=few, many=many, before=args.before)
    except ValueError as exc:  # not two numbers, or not few < many
        parser.error(f"--pairs: {exc}")
    if args.json:
        print(json.dumps(result))
        return
    for stage, count in result["instructions_per_pair"].items():
        print(f"{stage:20s} {count / 1e6:8.3f} M instructions per pair")
    print("creditgate / floor:", result["ratio_to_floor"])
    if "ratio_to_before" in result:
        print("creditgate / before:", result["ratio_to_before"])


if __name__ == "__main__":
    main()
