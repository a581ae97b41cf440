"""A customer is created under `external_id`, the name answers use; `id`, its earlier name in
requests, is still taken (deprecated), and failures name the field as the request did."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.http.conftest import Api


def test_external_id_names_the_customer_in_the_request_and_the_answer(api: Api) -> None:
    created = api.post("/v1/customers", {"external_id": "cust_new"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["external_id"] == "cust_new" and body["id"].startswith("cus_")
    assert api.get("/v1/customers/cust_new").json() == body


def test_the_deprecated_id_is_still_taken(api: Api) -> None:
    created = api.post("/v1/customers", {"id": "cust_old"})
    assert created.status_code == 201, created.text
    assert created.json()["external_id"] == "cust_old"
    both = api.post("/v1/customers", {"id": "cust_both", "external_id": "cust_both"})
    assert both.status_code == 201 and both.json()["external_id"] == "cust_both"


def test_a_retry_under_the_other_name_is_the_same_request(api: Api) -> None:
    headers = {"Idempotency-Key": "create-cust-9"}
    first = api.post("/v1/customers", {"id": "cust_9"}, headers=headers)
    again = api.post("/v1/customers", {"external_id": "cust_9"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()


def test_failures_name_the_field_the_request_used(api: Api) -> None:
    def field(body: dict[str, object]) -> tuple[int, str]:
        response = api.post("/v1/customers", body)
        assert response.headers["content-type"] == "application/problem+json"
        return response.status_code, response.json()["field"]

    assert field({}) == (422, "external_id")
    assert field({"external_id": "a/b"}) == (422, "external_id")
    assert field({"id": "a/b"}) == (422, "id")
    assert field({"id": "one", "external_id": "two"}) == (422, "external_id")
    api.post("/v1/customers", {"external_id": "taken"})
    assert field({"external_id": "taken"}) == (409, "external_id")
    assert field({"id": "taken"}) == (409, "id")


def test_the_document_marks_id_deprecated(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["NewCustomer"]
    assert schema["properties"]["id"]["deprecated"] is True
    assert "external_id" in schema["properties"]
    assert "required" not in schema  # one of the two, checked by the server
