"""CPU of one `creditgate serve` worker by layer, from py-spy's sampled stacks.

`python -m creditgate.bench.layers [--before PYTHONPATH] [--rate 150] [--seconds 20]`
serves creditgate (2 workers) on a fresh database, offers `bench http`'s pairs at the rate,
records one worker with py-spy (`pip install py-spy`; its raw, collapsed stacks) and
charges each sample to the layer of its innermost frame: creditgate's own layers by package,
then the libraries (psycopg, SQLAlchemy, pydantic, Starlette/FastAPI, uvicorn), then the
standard library. Samples per pair come from the sampling rate and the pairs served while
recording, so layers read as CPU ms per pair of that worker.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter

WARM = 8.0  # seconds of load before recording

LAYERS = (
    ("(creditgate/http/", "creditgate http (edge, routes)"),
    ("(creditgate/api/", "creditgate api"),
    ("(creditgate/services/", "creditgate services"),
    ("(creditgate/storage/", "creditgate storage"),
    ("(creditgate/domain/", "creditgate domain"),
    ("(creditgate/server/", "creditgate server"),
    ("(creditgate/", "creditgate other"),
    ("psycopg/", "psycopg"),
    ("psycopg_binary/", "psycopg"),
    ("sqlalchemy/", "SQLAlchemy"),
    ("pydantic", "pydantic"),
    ("starlette/", "Starlette/FastAPI"),
    ("fastapi/", "Starlette/FastAPI"),
    ("uvicorn/", "uvicorn"),
    ("uvloop/", "uvloop"),
    ("httptools/", "uvicorn"),
    ("prometheus_client/", "prometheus_client"),
    ("(json/", "stdlib json"),
    ("(asyncio/", "stdlib asyncio"),
    ("(threading.py", "stdlib threading/queue"),
    ("(queue.py", "stdlib threading/queue"),
    ("(logging/", "stdlib logging"),
)


def layer(frame: str) -> str:
    for needle, name in LAYERS:
        if needle in frame:
            return name
    return "other (stdlib, native)"


def by_layer(collapsed: str) -> Counter[str]:
    """Samples per layer of the innermost frame, from py-spy's `--format raw` output."""
    counts: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        innermost = stack.split(";")[-1]
        counts[layer(innermost)] += int(n)
    return counts


def main() -> None:
    from creditgate.bench.http import (
        _cpu_ticks,
        load,
        setup_creditgate,
        start_server,
        stop_server,
    )
    from creditgate.storage.throwaway import ENV_URL, create_database, drop_database, listening_port

    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default=None, help="PYTHONPATH of the creditgate to serve")
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sample-rate", type=int, default=200)
    parser.add_argument("--keep", default=None, help="Keep py-spy's raw stacks in this file")
    args = parser.parse_args()
    server_url = os.environ[ENV_URL]
    name = f"creditgate_layers_{uuid.uuid4().hex[:8]}"
    url = create_database(server_url, name)
    try:
        key, customers, _, _ = setup_creditgate(url, args.before)
        port = listening_port()
        server = start_server(url, port, 2, 1024, 10, src=args.before)
        try:
            with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as f:
                out = f.name
            result: dict[str, object] = {}

            def run_load() -> None:
                result.update(
                    load(port, key, customers, server, rate=args.rate, seconds=args.seconds + WARM)
                )

            loader = threading.Thread(target=run_load)
            loader.start()
            # The load's start, and every statement compiled and prepared in every thread.
            time.sleep(3 + WARM)
            # The busiest child of the supervisor is a uvicorn worker.
            ticks = _cpu_ticks()
            worker = max(
                (pid for pid, (parent, _, _) in ticks.items() if parent == server.pid),
                key=lambda pid: ticks[pid][2],
            )
            record = args.seconds
            subprocess.run(
                [
                    shutil.which("py-spy") or "py-spy",
                    "record",
                    "--pid",
                    str(worker),
                    "--duration",
                    str(int(record)),
                    "--rate",
                    str(args.sample_rate),
                    "--format",
                    "raw",
                    "--output",
                    out,
                    "--nonblocking",
                    "--gil",  # only the thread running Python: CPU, not waits
                ],
                check=True,
                capture_output=True,
            )
            loader.join()
        finally:
            stop_server(server)
        with open(out) as stacks:
            counts = by_layer(stacks.read())
        if args.keep:
            shutil.copy(out, args.keep)
        os.unlink(out)
        pairs_recorded = float(result["pairs_per_s"]) * int(record) / 2  # type: ignore[arg-type]
        ms_per_sample = 1000 / args.sample_rate
        total = sum(counts.values())
        print(
            json.dumps(
                {
                    "pairs_per_s": result["pairs_per_s"],
                    "server_cpu_ms_per_pair": result.get("server_cpu_ms_per_pair"),
                    "worker_ms_per_pair_sampled": round(total * ms_per_sample / pairs_recorded, 3),
                    "layers_ms_per_pair": {
                        name: round(n * ms_per_sample / pairs_recorded, 3)
                        for name, n in counts.most_common()
                    },
                    "layers_share": {name: round(n / total, 3) for name, n in counts.most_common()},
                }
            )
        )
    finally:
        drop_database(server_url, name)


if __name__ == "__main__":
    main()
