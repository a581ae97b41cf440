"""API keys over HTTP: shown once, listed by prefix, revoked and rotated; revocation bites fast."""

from __future__ import annotations

import time

from starlette.testclient import TestClient

from creditgate.api import Creditgate
from creditgate.server.app import Settings, create_app
from creditgate.services.catalog.api_keys import hash_secret
from creditgate.storage.tables import api_keys
from tests.http.conftest import Api


def test_a_new_key_is_shown_once_and_listed_by_prefix(api: Api) -> None:
    created = api.post("/v1/api-keys", {"name": "batch jobs"})
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert key.startswith(f"cg_{body['prefix']}_") and len(key.split("_", 2)[2]) >= 32
    listed = api.get("/v1/api-keys").json()["data"]
    assert [k["name"] for k in listed] == ["default", "batch jobs"]
    assert all("key" not in k for k in listed)
    assert key not in api.get("/v1/api-keys").text
    # The new key works on its own.
    assert (
        api.client.get("/v1/assets", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    )


def test_only_a_hash_of_the_secret_is_stored(api: Api, cg: Creditgate) -> None:
    key = api.post("/v1/api-keys", {"name": "x"}).json()
    with cg.db.connect() as conn:
        row = conn.execute(api_keys.select().where(api_keys.c.id == key["id"])).one()
    secret = key["key"].split("_", 2)[2]
    assert row.hash == hash_secret(secret) and secret not in row.hash
    assert key["key"] not in " ".join(str(v) for v in row)


def test_a_replayed_create_does_not_show_the_secret_again(api: Api) -> None:
    headers = {"Idempotency-Key": "make-key"}
    first = api.post("/v1/api-keys", {"name": "ci"}, headers=headers)
    again = api.post("/v1/api-keys", {"name": "ci"}, headers=headers)
    assert again.status_code == 201 == first.status_code
    assert again.json()["id"] == first.json()["id"] and again.json()["key"] is None
    assert len(api.get("/v1/api-keys").json()["data"]) == 2


def test_revoked_keys_stop_at_once_on_the_server_that_revoked_them(api: Api) -> None:
    spare = api.post("/v1/api-keys", {"name": "spare"}).json()
    spare_headers = {"Authorization": f"Bearer {spare['key']}"}
    assert api.client.get("/v1/assets", headers=spare_headers).status_code == 200  # cached now
    revoked = api.post(f"/v1/api-keys/{spare['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    response = api.client.get("/v1/assets", headers=spare_headers)
    assert response.status_code == 401 and "revoked" in response.json()["detail"]
    # Revoking twice changes nothing; rotating a revoked key is a conflict.
    assert api.post(f"/v1/api-keys/{spare['id']}/revoke").json() == revoked.json()
    assert api.post(f"/v1/api-keys/{spare['id']}/rotate").status_code == 409


def test_revocation_elsewhere_takes_effect_within_the_cache_time(cg: Creditgate) -> None:
    tenant, key = cg.create_tenant_with_key("cache")
    headers = {"Authorization": f"Bearer {key.key}"}
    with TestClient(create_app(cg, Settings(key_cache_seconds=0.3))) as server_1:
        assert server_1.get("/v1/assets", headers=headers).status_code == 200
        # Another server (or the CLI) revokes the key: this one has it cached.
        cg.tenant(tenant.id).revoke_api_key(key.id)
        time.sleep(0.4)
        assert server_1.get("/v1/assets", headers=headers).status_code == 401


def test_rotation_issues_a_replacement_and_retires_the_old_key(api: Api) -> None:
    old_id = api.get("/v1/api-keys").json()["data"][0]["id"]
    rotated = api.post(f"/v1/api-keys/{old_id}/rotate")
    assert rotated.status_code == 201
    new = rotated.json()
    assert new["id"] != old_id and new["name"] == "default" and new["key"]
    assert api.client.get("/v1/assets", headers=api.headers).status_code == 401
    new_headers = {"Authorization": f"Bearer {new['key']}"}
    listed = api.client.get("/v1/api-keys", headers=new_headers).json()["data"]
    states = {k["id"]: k["revoked_at"] is not None for k in listed}
    assert states == {old_id: True, new["id"]: False}


def test_last_used_is_recorded(api: Api) -> None:
    (key,) = api.get("/v1/api-keys").json()["data"]
    assert key["last_used_at"] is not None
