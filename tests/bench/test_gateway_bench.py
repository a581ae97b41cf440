"""`creditgate bench gateway` runs end to end: the stand-in and `creditgate serve` as their own
processes, both paths called at the offered rate, each answered call charged once."""

from __future__ import annotations

import json

import pytest

from creditgate.cli.main import run


def test_bench_gateway_reports_what_the_gateway_adds_over_a_direct_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["bench", "gateway", "--seconds", "1", "--rates", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)

    assert result["benchmark"] == "gateway" and result["backend"] == "sqlite"
    assert [(p["rate"], p["kind"], p["measure"]) for p in result["phases"]] == [
        (20.0, "chat", "whole"),
        (20.0, "stream", "ttfb"),
    ]
    for phase in result["phases"]:
        # Open loop: one second at 20/s is 20 calls on each path, every one answered.
        assert phase["gateway_calls"] == phase["direct_calls"] == 20
        assert phase["gateway_errors"] == phase["direct_errors"] == 0
        for q in ("p50", "p99"):
            gateway, direct = phase[f"gateway_{q}_ms"], phase[f"direct_{q}_ms"]
            assert direct > 0 and gateway > 0
            assert phase[f"added_{q}_ms"] == pytest.approx(gateway - direct, abs=0.011)
            assert phase[f"ratio_{q}"] == pytest.approx(gateway / direct, abs=0.006)
    stream = result["phases"][1]
    assert stream["gateway_complete_p50_ms"] >= stream["gateway_p50_ms"]
    # Warm-up calls included: each answered gateway call was charged once, and the ledger
    # verifies.
    assert result["gateway_answered"] == 2 * (20 + 20)
    assert result["charges"] == result["gateway_answered"]
    assert result["verified"] is True
    assert result["targets"]["rate"] == 50 and result["targets"]["met"] is None
    assert len(result["load_average_before"]) == 3


def test_bench_gateway_refuses_rates_that_are_not_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["bench", "gateway", "--rates", "fast"]) == 2
    assert "--rates" in capsys.readouterr().err
