"""The mem0-compatible router, driven with the requests mem0's clients send.

Two clients: mem0's REST server API (``server/main.py``: ``POST /memories``,
``GET /memories?user_id=``, ``POST /search``, ``PUT/DELETE /memories/{id}``,
``DELETE /memories?user_id=``), and the ``mem0ai`` ``MemoryClient`` (``mem0/client/main.py``),
which sends ``Authorization: Token <key>``, a ``Mem0-User-ID`` header, calls ``/v1/ping/``
first and uses trailing slashes (``/v1/memories/``, ``/v1/memories/search/``, ``/v2/...``).
"""

from __future__ import annotations

import hashlib

import httpx
import pytest


def _error(response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["type"] == kind


def test_rest_server_shapes(maya):
    added = maya.post(
        "/memories",
        json={
            "messages": [
                {"role": "user", "content": "I'm a vegetarian and allergic to nuts."},
                {"role": "assistant", "content": "Noted: vegetarian, no nuts."},
                {"role": "system", "content": "You are a helpful assistant."},
            ],
            "user_id": "maya",
            "metadata": {"source": "onboarding"},
        },
    )
    assert added.status_code == 200, added.text
    results = added.json()["results"]
    assert [r["event"] for r in results] == ["ADD", "ADD"]  # the system turn is not kept
    first = results[0]["id"]
    listed = maya.get("/memories", params={"user_id": "maya"}).json()["results"]
    memory = next(m for m in listed if m["id"] == first)
    assert memory["memory"] == "I'm a vegetarian and allergic to nuts."
    assert memory["metadata"] == {"source": "onboarding"} and memory["user_id"] == "maya"
    assert memory["hash"] == hashlib.md5(memory["memory"].encode()).hexdigest()
    assert memory["created_at"].endswith("+00:00")
    assert maya.get(f"/memories/{first}").json()["memory"] == memory["memory"]
    hits = maya.post("/search", json={"query": "allergic to nuts", "user_id": "maya"}).json()
    assert hits["results"][0]["id"] == first and 0 < hits["results"][0]["score"] <= 1
    assert maya.put(f"/memories/{first}", json={"text": "Vegan, allergic to nuts"}).json() == {
        "message": "Memory updated successfully!"
    }
    assert maya.get(f"/memories/{first}").json()["memory"] == "Vegan, allergic to nuts"
    assert maya.get(f"/memories/{first}/history").json() == []
    assert maya.delete(f"/memories/{first}").json() == {"message": "Memory deleted successfully"}
    _error(maya.get(f"/memories/{first}"), 404, "NotFound")
    assert maya.delete("/memories", params={"user_id": "maya"}).json() == {
        "message": "All relevant memories deleted"
    }
    assert maya.get("/memories", params={"user_id": "maya"}).json() == {"results": []}
    # Facts outside mem0's category are not mem0 memories and are left alone.
    assert maya.get("/v1/facts").status_code == 200


def test_agent_and_run_ids_filter(maya):
    maya.post(
        "/memories",
        json={
            "messages": [{"role": "user", "content": "run one"}],
            "user_id": "maya",
            "run_id": "r1",
            "agent_id": "coach",
        },
    )
    maya.post(
        "/memories", json={"messages": "plain string message", "user_id": "maya", "run_id": "r2"}
    )
    r1 = maya.get("/memories", params={"user_id": "maya", "run_id": "r1"}).json()["results"]
    assert [m["memory"] for m in r1] == ["run one"] and r1[0]["agent_id"] == "coach"
    coach = maya.get("/memories", params={"agent_id": "coach"}).json()["results"]
    assert [m["memory"] for m in coach] == ["run one"]
    maya.delete("/memories", params={"user_id": "maya", "run_id": "r1"})
    left = [m["memory"] for m in maya.get("/memories").json()["results"]]
    assert "run one" not in left and "plain string message" in left


def test_memory_client_shapes(api):
    """What ``MemoryClient(api_key=token, host=url)`` sends, call by call."""
    token = api.tokens["bob"]
    headers = {
        "Authorization": f"Token {token}",
        "Mem0-User-ID": hashlib.md5(token.encode()).hexdigest(),
    }
    with httpx.Client(base_url=api.url, headers=headers, timeout=30) as client:
        ping = client.get("/v1/ping/")
        assert ping.status_code == 200 and "user_email" in ping.json()
        added = client.post(
            "/v1/memories/",
            json={
                "messages": [{"role": "user", "content": "Bob plays tennis on weekends"}],
                "user_id": "bob",
                "output_format": "v1.1",
                "version": "v2",
            },
        )
        assert added.status_code == 200, added.text
        mid = added.json()["results"][0]["id"]
        assert client.get(f"/v1/memories/{mid}/").json()["memory"].startswith("Bob plays")
        v1_all = client.get("/v1/memories/", params={"user_id": "bob"}).json()["results"]
        assert mid in {m["id"] for m in v1_all}
        v2_all = client.post("/v2/memories/", json={"filters": {"AND": [{"user_id": "bob"}]}})
        assert mid in {m["id"] for m in v2_all.json()["results"]}
        v1_search = client.post(
            "/v1/memories/search/", json={"query": "tennis", "user_id": "bob", "top_k": 3}
        ).json()["results"]
        assert v1_search[0]["id"] == mid
        v2_search = client.post(
            "/v2/memories/search/",
            json={"query": "tennis weekends", "filters": {"OR": [{"user_id": "bob"}]}},
        ).json()["results"]
        assert v2_search[0]["id"] == mid
        updated = client.put(
            f"/v1/memories/{mid}/", json={"text": "Bob plays tennis", "metadata": {"k": 1}}
        )
        assert updated.status_code == 200
        got = client.get(f"/v1/memories/{mid}/").json()
        assert got["memory"] == "Bob plays tennis" and got["metadata"] == {"k": 1}
        assert client.get(f"/v1/memories/{mid}/history/").json() == []
        assert client.delete(f"/v1/memories/{mid}/").status_code == 200
        assert client.delete("/v1/memories/", params={"user_id": "bob"}).status_code == 200
        assert client.get("/v1/memories/", params={"user_id": "bob"}).json() == {"results": []}


def test_threshold_and_limits(maya):
    for text in ("green tea in the morning", "black coffee at noon", "hiking in the alps"):
        maya.post("/memories", json={"messages": [{"role": "user", "content": text}]})
    all_hits = maya.post("/search", json={"query": "green tea morning"}).json()["results"]
    assert all_hits[0]["memory"] == "green tea in the morning"
    top = maya.post("/search", json={"query": "green tea morning", "limit": 1}).json()
    assert len(top["results"]) == 1
    strict = maya.post("/search", json={"query": "green tea morning", "threshold": 0.99})
    assert all(h["score"] >= 0.99 for h in strict.json()["results"])
    _error(maya.post("/search", json={"query": "x", "limit": 0}), 422, "InvalidInput")
    _error(maya.post("/search", json={"query": "   "}), 422, "InvalidInput")


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/memories", {"params": {"user_id": "maya"}}),
        ("DELETE", "/memories", {"params": {"user_id": "maya"}}),
        ("POST", "/search", {"json": {"query": "nuts", "user_id": "maya"}}),
        ("POST", "/memories", {"json": {"messages": "x", "user_id": "maya"}}),
        ("POST", "/v2/memories/search/", {"json": {"query": "x", "filters": {"user_id": "maya"}}}),
    ],
)
def test_another_users_id_is_404(bob, method, path, kwargs):
    _error(bob.request(method, path, **kwargs), 404, "NotFound")


def test_bad_mem0_input(maya, admin):
    _error(maya.post("/memories", json={"user_id": "maya"}), 422, "InvalidInput")
    _error(maya.post("/memories", json={"messages": [{"role": "user"}]}), 422, "InvalidInput")
    _error(
        maya.post("/memories", json={"messages": [{"role": "user", "content": ""}]}),
        422,
        "InvalidInput",
    )
    _error(admin.get("/memories"), 422, "InvalidInput")  # the admin must name the user
    fid = maya.post("/memories", json={"messages": "x"}).json()["results"][0]["id"]
    _error(maya.put(f"/memories/{fid}", json={}), 422, "InvalidInput")
    _error(
        maya.put(f"/memories/{fid}", content=b"{bad", headers={"Content-Type": "application/json"}),
        422,
        "InvalidInput",
    )
