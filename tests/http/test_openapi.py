"""The OpenAPI document the SDK and Schemathesis work from."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from creditgate.domain.amounts import MAX_AMOUNT


def test_the_document_is_openapi_3_1_with_problem_responses(client: TestClient) -> None:
    document: dict[str, Any] = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path, item in document["paths"].items():
        assert path.startswith("/v1/")
        for method, operation in item.items():
            if path == "/v1/providers/stripe/webhook":
                # Stripe calls it: no API key; the tenant's signing secret proves the sender.
                assert "security" not in operation
                continue
            assert operation["security"] == [{"HTTPBearer": []}], (method, path)
            for status in ("401", "422", "503"):
                content = operation["responses"][status]["content"]
                assert content == {"application/problem+json": {"schema": problem_ref}}
            success = [s for s in operation["responses"] if s.startswith("2")]
            assert len(success) == 1
            if method == "post":
                names = {p["name"] for p in operation.get("parameters", [])}
                assert "Idempotency-Key" in names, path
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "detail", "code"}
    # Bounds stay exact integers (FastAPI's model would make 2**63 - 1 a float).
    amount = schemas["NewCharge"]["properties"]["amount"]["anyOf"]
    assert [s["maximum"] for s in amount if s.get("type") == "integer"] == [MAX_AMOUNT]
    (quantities,) = (
        s
        for s in schemas["NewCharge"]["properties"]["quantities"]["anyOf"]
        if s["type"] == "object"
    )
    (quantity,) = quantities["patternProperties"].values()
    assert [s.get("maximum") for s in quantity["anyOf"]] == [MAX_AMOUNT, None]


def test_status_codes_match_the_contract(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    def success(path: str, method: str) -> str:
        return next(s for s in paths[path][method]["responses"] if s.startswith("2"))

    assert success("/v1/authorizations", "post") == "201"
    assert success("/v1/charges", "post") == "201"
    assert success("/v1/charges/batch", "post") == "200"
    assert success("/v1/authorizations/{id}/settle", "post") == "200"
    assert success("/v1/authorizations/{id}/void", "post") == "200"
    assert success("/v1/customers/{customer}/grants", "post") == "201"
    assert success("/v1/grants/{grant}/void", "post") == "200"
    assert success("/v1/customers/{customer}/policies/{asset}", "put") == "200"
    assert success("/v1/rate-cards", "post") == "201"
    assert success("/v1/rate-cards", "get") == "200"
    assert success("/v1/rate-cards/quote", "post") == "200"
    assert success("/v1/model-prices", "post") == "201"
    assert success("/v1/reports/margin", "get") == "200"
    # An unknown asset in a card or a report's query is a 404, like an unknown id.
    assert "404" in paths["/v1/rate-cards"]["post"]["responses"]
    assert "404" in paths["/v1/reports/margin"]["get"]["responses"]


def test_the_document_is_built_off_the_event_loop_once(client: TestClient) -> None:
    """Building the reference takes a good part of a second on a busy machine: done on the
    event loop, it held up every other request of the worker meanwhile."""
    import asyncio

    app: Any = client.app
    app._openapi_bodies.clear()
    on_a_loop: list[bool] = []
    build = app.openapi

    def recording() -> dict[str, Any]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            on_a_loop.append(False)
        else:
            on_a_loop.append(True)
        return build()  # type: ignore[no-any-return]

    app.openapi = recording
    try:
        first = client.get("/openapi.json")
        second = client.get("/openapi.json", headers={"X-Request-Id": "again"})
    finally:
        app.openapi = build
    assert first.status_code == second.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.content == second.content
    assert first.json() == build()
    assert on_a_loop == [False]  # built on a thread with no event loop, once
