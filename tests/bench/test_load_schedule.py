"""The load of `bench http` sends exactly the pairs its rate and seconds name, after its
warm-up: measured against a stand-in server that approves and settles everything at once."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from creditgate.bench.http import _generate, pair_counts


async def _stand_in(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            break
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        settle = b"/settle " in head.split(b"\r\n")[0]
        body = json.dumps({} if settle else {"id": "hold_1", "approved": True}).encode()
        status = b"200 OK" if settle else b"201 Created"
        writer.write(b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
        await writer.drain()
    writer.close()


@pytest.mark.parametrize(
    ("rate", "warmup", "seconds", "warm", "measured"),
    [
        (15.0, 0.2, 1.0, 3, 15),  # the suite's own run of `bench http --floor`
        (15.0, 1.0, 1.0, 15, 15),
        (30.0, 0.1, 0.5, 3, 15),
    ],
)
def test_the_load_sends_its_rate_times_its_seconds(
    rate: float, warmup: float, seconds: float, warm: int, measured: int
) -> None:
    assert pair_counts(rate, warmup, seconds) == (warm, measured)

    async def run() -> tuple[int, int]:
        server = await asyncio.start_server(_stand_in, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            tally = await _generate(
                port, "cg_key", ["cust_1"], rate, seconds, time.time(), 2, "t", warmup
            )
        return tally.pairs, tally.all_pairs

    assert asyncio.run(run()) == (measured, warm + measured)
