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
    assert schemas["NewCharge"]["properties"]["amount"]["maximum"] == MAX_AMOUNT


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
