"""Every request needs a token; a user's token never reaches another user's data.

Missing, malformed, wrong and revoked tokens answer 401 and no data; another user's ids
answer 404 exactly like ids nobody has; failed checks are rate-limited per address; the
Host header must be the bound address; bodies are limited; no CORS unless configured.
"""

from __future__ import annotations

import httpx
import pytest
from backend_support import new_conversation

from aico_backend.auth import FailedAuthLimiter
from aico_backend.errors import RateLimited

PROTECTED = [
    ("GET", "/v1/health"),
    ("GET", "/v1/me"),
    ("GET", "/v1/facts"),
    ("POST", "/v1/search"),
    ("POST", "/v1/context"),
    ("GET", "/v1/conversations"),
    ("GET", "/memories"),
    ("POST", "/search"),
    ("GET", "/v1/ping/"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_missing_token_is_401_without_data(anonymous, method, path):
    response = anonymous.request(method, path, json={"query": "x"})
    assert response.status_code == 401
    assert response.json() == {
        "error": {"type": "Unauthorized", "message": "a bearer token is required"}
    }
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer aico_0123456789abcdef_" + "A" * 43,  # well-formed, unknown
        "Bearer not-a-token",
        "Basic dXNlcjpwYXNz",
        "Bearer",
    ],
)
def test_wrong_tokens_are_401(api, header):
    with httpx.Client(base_url=api.url, headers={"Authorization": header}) as client:
        response = client.get("/v1/facts")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "Unauthorized"


def test_a_tampered_token_is_401(api):
    token = api.tokens["maya"]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {tampered}"}) as c:
        assert c.get("/v1/me").status_code == 401


def test_revoked_token_is_401_at_once(api, admin):
    from backend_support import token_repo

    row, token = token_repo(api.memory.sync).create("bob", label="old tablet")
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.get("/v1/me").json()["user"]["user_id"] == "bob"
        token_repo(api.memory.sync).revoke(row.token_id)
        response = c.get("/v1/me")
    assert response.status_code == 401


def test_mem0_token_scheme_is_accepted(api):
    with api.client("maya", scheme="Token") as client:
        assert client.get("/v1/me").json()["user"]["user_id"] == "maya"


def test_another_users_ids_answer_404_like_missing_ones(maya, bob):
    conversation = new_conversation(maya, "private")
    message = maya.post(
        f"/v1/conversations/{conversation}/messages",
        json={"role": "user", "content": "my secret plan"},
    ).json()["id"]
    fact = maya.post("/v1/facts", json={"content": "maya's secret fact"}).json()["fact_id"]
    missing = "0" * 32
    pairs = [
        ("GET", f"/v1/conversations/{conversation}", f"/v1/conversations/{missing}", None),
        (
            "PATCH",
            f"/v1/conversations/{conversation}",
            f"/v1/conversations/{missing}",
            {"title": "x"},
        ),
        ("DELETE", f"/v1/conversations/{conversation}", f"/v1/conversations/{missing}", None),
        (
            "GET",
            f"/v1/conversations/{conversation}/messages",
            f"/v1/conversations/{missing}/messages",
            None,
        ),
        (
            "POST",
            f"/v1/conversations/{conversation}/messages",
            f"/v1/conversations/{missing}/messages",
            {"role": "user", "content": "hi"},
        ),
        ("GET", f"/v1/facts/{fact}", f"/v1/facts/{missing}", None),
        ("PATCH", f"/v1/facts/{fact}", f"/v1/facts/{missing}", {"content": "x"}),
        ("DELETE", f"/v1/facts/{fact}", f"/v1/facts/{missing}", None),
        ("POST", f"/v1/facts/{fact}/revisit", f"/v1/facts/{missing}/revisit", None),
        ("GET", f"/memories/{fact}", f"/memories/{missing}", None),
        ("PUT", f"/memories/{fact}", f"/memories/{missing}", {"text": "x"}),
        ("DELETE", f"/memories/{fact}", f"/memories/{missing}", None),
        ("GET", "/v1/users/maya", "/v1/users/nobody", None),
        ("GET", "/v1/facts?user_id=maya", "/v1/facts?user_id=nobody", None),
        ("GET", "/memories?user_id=maya", "/memories?user_id=nobody", None),
        ("POST", f"/v1/sessions/{conversation}/end", f"/v1/sessions/{missing}/end", None),
    ]
    for method, theirs, nobodys, body in pairs:
        other = bob.request(method, theirs, json=body)
        absent = bob.request(method, nobodys, json=body)
        assert other.status_code == absent.status_code == 404, (method, theirs, other.text)
        assert other.json() == absent.json(), (method, theirs)
    for grain, key, value in (
        ("conversation", "conversation_id", conversation),
        ("message", "message_id", message),
    ):
        other = bob.post("/v1/forget", json={"grain": grain, key: value})
        absent = bob.post("/v1/forget", json={"grain": grain, key: missing})
        assert other.status_code == absent.status_code == 404
        assert other.json() == absent.json()
    # Reads that filter by owner return nothing of maya's, like an unknown id would.
    hits = bob.post("/v1/search", json={"query": "secret plan", "conversation_id": conversation})
    assert hits.status_code == 200 and hits.json()["results"] == []
    context = bob.post("/v1/context", json={"session_id": conversation, "query": "secret plan"})
    assert context.status_code == 200 and "secret" not in context.text
    # And nothing of maya's was changed by any of it.
    assert maya.get(f"/v1/facts/{fact}").json()["content"] == "maya's secret fact"
    assert maya.get(f"/v1/conversations/{conversation}").json()["message_count"] == 1


def test_user_token_cannot_use_admin_endpoints(maya):
    for method, path, body in (
        ("POST", "/v1/users", {"display_name": "Eve"}),
        ("GET", "/v1/users", None),
        ("DELETE", "/v1/users/bob", None),
        ("GET", "/v1/tasks", None),
    ):
        response = maya.request(method, path, json=body)
        assert response.status_code == 403, path
        assert response.json()["error"]["type"] == "Forbidden"


def test_failed_auth_is_rate_limited(tmp_path):
    from backend_support import backend_test_config, start_api

    api = start_api(tmp_path / "data", backend_test_config(auth_failures_per_minute=3))
    try:
        bad = {"Authorization": "Bearer aico_0123456789abcdef_" + "B" * 43}
        with httpx.Client(base_url=api.url, headers=bad) as client:
            codes = [client.get("/v1/me").status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        with api.client("maya") as good:
            limited = good.get("/v1/me")  # from the same address: refused while limited
        assert limited.status_code == 429
        assert limited.json()["error"]["type"] == "RateLimited"
        assert int(limited.headers["retry-after"]) >= 1
    finally:
        api.server.stop()


def test_limiter_window_slides():
    now = [1000.0]
    limiter = FailedAuthLimiter(2, clock=lambda: now[0])
    limiter.failed("a")
    limiter.failed("a")
    with pytest.raises(RateLimited):
        limiter.check("a")
    limiter.check("b")  # per address
    now[0] += 61
    limiter.check("a")


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "localhost:1", ""])
def test_host_header_must_be_the_bound_address(api, host):
    port = api.server.settings.port
    with api.client("maya") as client:
        response = client.get("/v1/me", headers={"Host": host.format(port=port)})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "InvalidHost"


def test_loopback_names_are_accepted(api):
    port = api.server.settings.port
    with api.client("maya") as client:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
            assert client.get("/v1/me", headers={"Host": host}).status_code == 200


def test_body_limit(tmp_path):
    from backend_support import backend_test_config, start_api

    api = start_api(tmp_path / "data", backend_test_config(max_body_bytes=2000))
    try:
        with api.client("maya") as client:
            big = {"content": "x" * 3000}
            declared = client.post("/v1/facts", json=big)

            def chunks():
                yield b'{"content": "'
                for _ in range(10):
                    yield b"y" * 500
                yield b'"}'

            streamed = client.post(
                "/v1/facts", content=chunks(), headers={"Content-Type": "application/json"}
            )
            small = client.post("/v1/facts", json={"content": "fits"})
        for response in (declared, streamed):
            assert response.status_code == 413
            assert response.json()["error"]["type"] == "PayloadTooLarge"
        assert small.status_code == 201
        assert not any(f.content.startswith("y") for f in _facts(api))
    finally:
        api.server.stop()


def _facts(api):
    from aico.data.repositories import FactRepository

    return FactRepository(api.memory.store.connection("core")).list("maya")


def test_no_cors_unless_configured(maya):
    response = maya.options(
        "/v1/me",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in response.headers
    response = maya.get("/v1/me", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_for_a_configured_origin(tmp_path):
    from backend_support import backend_test_config, start_api

    api = start_api(
        tmp_path / "data", backend_test_config(cors_origins=["http://app.localhost:5173"])
    )
    try:
        with api.client("maya") as client:
            preflight = client.options(
                "/v1/me",
                headers={
                    "Origin": "http://app.localhost:5173",
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization",
                },
            )
            other = client.get("/v1/me", headers={"Origin": "https://evil.example"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://app.localhost:5173"
        assert "access-control-allow-origin" not in other.headers
    finally:
        api.server.stop()


def test_responses_are_not_cacheable(maya):
    response = maya.get("/v1/me")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
