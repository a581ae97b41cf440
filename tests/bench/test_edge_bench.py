"""`python -m creditgate.bench.edge` runs: pairs and refusals through the edge and the full
stack, CPU per pair with the ledger's share taken out."""

from __future__ import annotations

import asyncio

from creditgate.api import TenantLedger
from creditgate.bench.edge import measure


def test_the_edge_bench_measures_both_ways() -> None:
    authorize = TenantLedger.authorize
    result = asyncio.run(measure(pairs=3, refusals=5, blocks=2))
    assert TenantLedger.authorize is authorize  # the ledger's timer is taken off again
    for way in ("edge", "full stack"):
        figures = result[way]
        assert figures["pair_us"] > figures["pair_http_us"] > 0
        assert figures["refusal_us"] > 0
