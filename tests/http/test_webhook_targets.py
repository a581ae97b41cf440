"""Webhooks go only to public addresses unless the operator allows private ones: refused at
registration over HTTP in every spelling of an inside address, refused again at delivery
after DNS resolution, connected to the address that was checked, and nothing but a status
and a class of error recorded for the tenant to read."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from creditgate.adapters.guarded import GuardedBackend, guarded_transport
from creditgate.adapters.outbound import RefusedTarget, literal_address
from creditgate.api import Creditgate
from creditgate.services.webhooks.delivery import WebhookSender
from tests.conftest import operator_settings
from tests.http.conftest import Api
from tests.webhook_receiver import Receiver

INSIDE = [
    "http://127.0.0.1/hook",
    "http://localhost:8080/hook",
    "http://LOCALHOST./hook",
    "http://127.1/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://0177.0.0.1/hook",
    "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/hook",
    "http://172.16.3.4/hook",
    "http://192.168.1.10/hook",
    "http://100.64.0.1/hook",
    "http://224.0.0.1/hook",
    "http://[fd00::1]/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::127.0.0.1]/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook",
    "http://[2002:7f00:1::]/hook",
    "http://0.0.0.0/hook",
    "http://0/hook",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata/computeMetadata/v1/",
    "http://app.localhost/hook",
    "http://printer.local/hook",
]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def resolving(answers: dict[str, list[str]]) -> Any:
    """A resolver that knows only these names (as an attacker's DNS would answer them)."""

    def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    return resolve


def create(api: Api, url: str) -> Any:
    return api.post("/v1/webhook-endpoints", {"url": url})


@pytest.mark.parametrize("url", INSIDE)
def test_an_inside_address_is_refused_at_registration_naming_the_url(api: Api, url: str) -> None:
    answer = create(api, url)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid_input" and answer.json()["field"] == "url"
    assert api.get("/v1/webhook-endpoints").json()["data"] == []


def test_an_endpoint_cannot_be_moved_inside_either(api: Api) -> None:
    created = create(api, "https://hooks.example.com/a").json()
    moved = api.post(f"/v1/webhook-endpoints/{created['id']}", {"url": "http://127.1:9/x"})
    assert moved.status_code == 422 and moved.json()["field"] == "url"
    shown = api.get(f"/v1/webhook-endpoints/{created['id']}").json()
    assert shown["url"] == "https://hooks.example.com/a"


def test_public_addresses_and_names_are_accepted(api: Api) -> None:
    for url in (
        "https://hooks.example.com/a",
        "http://93.184.215.14/b",
        "https://[2606:4700::1]/c",
    ):
        assert create(api, url).status_code == 201, url


def test_the_operators_switch_lets_private_targets_register(api: Api, cg: Creditgate) -> None:
    with operator_settings(cg, allow_private_webhook_targets=True):
        assert create(api, "http://127.0.0.1:9/hook").status_code == 201
    assert create(api, "http://127.0.0.1:9/other").status_code == 422


def test_odd_ipv4_spellings_are_read_as_the_system_reads_them() -> None:
    for text in ("127.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.0.1", "0x7f.1"):
        assert str(literal_address(text)) == "127.0.0.1", text
    assert literal_address("example.com") is None
    assert literal_address("cafe.be") is None


def _delivery(api: Api, receiver: Receiver, host: str, sender: WebhookSender) -> dict[str, Any]:
    port = receiver.url().split(":")[2].split("/")[0]
    created = create(api, f"http://{host}:{port}/hook")
    assert created.status_code == 201, created.text
    receiver.expect("/hook", created.json()["secret"])
    sent = api.post(f"/v1/webhook-endpoints/{created.json()['id']}/test").json()
    api.ledger.deliver_webhooks(sender)
    answer = api.get(f"/v1/webhook-deliveries/{sent['id']}")
    assert answer.status_code == 200
    return dict(answer.json())


def test_a_public_name_that_resolves_inside_is_refused_at_delivery(
    api: Api, receiver: Receiver
) -> None:
    resolve = resolving({"hooks.example.com": ["127.0.0.1"]})
    with WebhookSender(timeout=2, resolve=resolve) as sender:
        delivery = _delivery(api, receiver, "hooks.example.com", sender)
    assert receiver.received == []
    assert delivery["last_error"] == "refused_target"
    assert delivery["last_status_code"] is None and "response_excerpt" not in delivery


def test_with_the_switch_the_connection_goes_to_the_address_resolved(
    api: Api, receiver: Receiver, cg: Creditgate
) -> None:
    resolve = resolving({"hooks.example.com": ["127.0.0.1"]})
    with (
        operator_settings(cg, allow_private_webhook_targets=True),
        WebhookSender(timeout=2, resolve=resolve, allow_private_targets=True) as sender,
    ):
        delivery = _delivery(api, receiver, "hooks.example.com", sender)
    (got,) = receiver.received
    assert got.verified and got.headers["host"].startswith("hooks.example.com:")
    assert delivery["status"] == "succeeded" and delivery["last_status_code"] == 200


def test_a_failed_attempt_records_a_class_of_error_never_the_socket_text(
    api: Api, cg: Creditgate
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # nothing listens once it is closed
    with (
        operator_settings(cg, allow_private_webhook_targets=True),
        WebhookSender(timeout=2, allow_private_targets=True) as sender,
    ):
        created = create(api, f"http://127.0.0.1:{closed}/hook").json()
        sent = api.post(f"/v1/webhook-endpoints/{created['id']}/test").json()
        api.ledger.deliver_webhooks(sender)
    delivery = api.get(f"/v1/webhook-deliveries/{sent['id']}").json()
    assert delivery["last_error"] == "connection_refused"
    assert "Errno" not in str(delivery) and "Connection refused" not in str(delivery)


def test_what_the_receiver_answers_is_not_shown_to_the_tenant(
    api: Api, receiver: Receiver, cg: Creditgate
) -> None:
    receiver.plan("/hook", 500)  # its body says "failing with 500"
    with (
        operator_settings(cg, allow_private_webhook_targets=True),
        WebhookSender(timeout=2, allow_private_targets=True) as sender,
    ):
        delivery = _delivery(api, receiver, "127.0.0.1", sender)
    assert delivery["last_status_code"] == 500 and delivery["last_error"] == "http_status"
    listed = api.get("/v1/webhook-deliveries").text
    assert "failing with" not in listed and "response_excerpt" not in listed


class _Recording(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self.hosts: list[str] = []

    def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.hosts.append(host)
        raise httpcore.ConnectError("recorded")


def test_dns_rebinding_gains_nothing_the_checked_address_is_the_one_connected() -> None:
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])  # public when checked, then inside
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    inner = _Recording()
    guard = GuardedBackend(allow_private=False, resolve=rebinding, inner=inner)
    with pytest.raises(httpcore.ConnectError):
        guard.connect_tcp("rebind.example.com", 443, timeout=1)
    assert asked == ["rebind.example.com"] and inner.hosts == ["93.184.215.14"]
    with pytest.raises(RefusedTarget):
        guard.connect_tcp("rebind.example.com", 443, timeout=1)
    assert inner.hosts == ["93.184.215.14"]  # the inside answer was never connected to


def test_every_connection_of_the_transport_goes_through_the_guard() -> None:
    resolve = resolving({"mixed.example.com": ["93.184.215.14", "10.0.0.1"]})
    with httpx.Client(transport=guarded_transport(allow_private=False, resolve=resolve)) as http:
        with pytest.raises(RefusedTarget, match="private"):
            http.post("https://mixed.example.com/hook")
        with pytest.raises(RefusedTarget):
            http.get("http://[::ffff:7f00:1]:8080/")


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_names_the_urls_host_and_a_failed_handshake_is_a_tls_error(
    api: Api, cg: Creditgate, tmp_path: Path
) -> None:
    cert, key = _certificate(tmp_path, "hooks.example.com")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    named: list[str | None] = []
    context.sni_callback = lambda _sock, name, _ctx: named.append(name)  # type: ignore[assignment,misc,return-value]
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass  # the client gives up: its CA store does not know this certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    resolve = resolving({"hooks.example.com": ["127.0.0.1"]})
    try:
        with (
            operator_settings(cg, allow_private_webhook_targets=True),
            WebhookSender(timeout=3, resolve=resolve, allow_private_targets=True) as sender,
        ):
            created = create(api, f"https://hooks.example.com:{port}/hook").json()
            sent = api.post(f"/v1/webhook-endpoints/{created['id']}/test").json()
            api.ledger.deliver_webhooks(sender)
        thread.join(5)
    finally:
        listener.close()
    # Connected to 127.0.0.1, the TLS handshake still named the URL's host.
    assert named == ["hooks.example.com"]
    delivery = api.get(f"/v1/webhook-deliveries/{sent['id']}").json()
    assert delivery["last_error"] == "tls_error" and delivery["last_status_code"] is None
