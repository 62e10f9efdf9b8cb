"""Every ``/v1`` endpoint over real HTTP: the happy path, and bad input as a typed 4xx."""

from __future__ import annotations

import httpx
import pytest
from backend_support import new_conversation, say, token_repo


def _error(response, status: int, kind: str = "InvalidInput") -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["type"] == kind, body
    return str(body["error"]["message"])


# ---- users -------------------------------------------------------------------------------


def test_users_admin_crud_and_me(admin, maya, api):
    made = admin.post("/v1/users", json={"display_name": "Carol", "user_id": "carol"})
    assert made.status_code == 201 and made.json()["user_id"] == "carol"
    assert "carol" in {u["user_id"] for u in admin.get("/v1/users").json()["users"]}
    assert admin.get("/v1/users/carol").json()["display_name"] == "Carol"
    changed = admin.patch("/v1/users/carol", json={"nickname": "Caz", "is_active": False})
    assert changed.json()["nickname"] == "Caz" and changed.json()["is_active"] is False
    listed = admin.get("/v1/users", params={"include_inactive": "true"}).json()["users"]
    assert "carol" in {u["user_id"] for u in listed}
    forgotten = admin.delete("/v1/users/carol")
    assert forgotten.status_code == 200 and forgotten.json()["grain"] == "user"
    _error(admin.get("/v1/users/carol"), 404, "NotFound")
    me = maya.get("/v1/me").json()
    assert me["admin"] is False and me["user"]["user_id"] == "maya"
    admin_me = admin.get("/v1/me").json()
    assert admin_me["admin"] is True and admin_me["user"] is None
    assert admin_me["token_id"] != me["token_id"]


def test_users_bad_input(admin, maya):
    _error(admin.post("/v1/users", json={}), 422)
    _error(admin.post("/v1/users", json={"display_name": ""}), 422)
    _error(admin.post("/v1/users", json={"display_name": "X", "user_type": "robot"}), 422)
    _error(admin.post("/v1/users", json={"display_name": "X", "colour": "red"}), 422)
    _error(admin.post("/v1/users", json={"display_name": "Maya", "user_id": "maya"}), 422)
    _error(admin.delete("/v1/users/nobody"), 404, "NotFound")
    _error(maya.patch("/v1/users/maya", json={"is_active": False}), 403, "Forbidden")
    assert maya.patch("/v1/users/maya", json={"preferences": {"tone": "warm"}}).status_code == 200


# ---- conversations and messages --------------------------------------------------------


def test_conversation_lifecycle(maya):
    cid = new_conversation(maya, "Training")
    got = maya.get(f"/v1/conversations/{cid}").json()
    assert got["title"] == "Training" and got["message_count"] == 0 and got["status"] == "active"
    first = say(maya, cid, "I ran 14 km today")
    say(maya, cid, "Great pace!", role="assistant", model="local-llm")
    listed = maya.get("/v1/conversations").json()["conversations"]
    assert listed[0]["id"] == cid and listed[0]["message_count"] == 2
    renamed = maya.patch(
        f"/v1/conversations/{cid}", json={"title": "Running", "status": "archived"}
    )
    assert renamed.json()["title"] == "Running" and renamed.json()["status"] == "archived"
    page = maya.get(f"/v1/conversations/{cid}/messages", params={"limit": 1}).json()
    assert [m["id"] for m in page["messages"]] == [first] and page["next_offset"] == 1
    rest = maya.get(f"/v1/conversations/{cid}/messages", params={"limit": 1, "offset": 1}).json()
    assert rest["messages"][0]["role"] == "assistant" and rest["next_offset"] is None
    ended = maya.post(f"/v1/sessions/{cid}/end").json()
    assert ended["segments_created"] >= 1
    assert maya.get(f"/v1/conversations/{cid}/messages").json()["messages"][0]["consolidated"]
    gone = maya.delete(f"/v1/conversations/{cid}").json()
    assert gone["grain"] == "conversation" and gone["messages"] == 2 and gone["segments"] >= 1
    _error(maya.get(f"/v1/conversations/{cid}"), 404, "NotFound")


def test_message_with_its_own_session_and_the_session_check(maya, bob):
    cid = new_conversation(maya)
    stored = maya.post(
        f"/v1/conversations/{cid}/messages",
        json={"role": "user", "content": "hello", "session_id": "maya-device-1"},
    ).json()
    assert stored["session_id"] == "maya-device-1"
    # Bob cannot write into maya's session from his own conversation.
    theirs = new_conversation(bob)
    response = bob.post(
        f"/v1/conversations/{theirs}/messages",
        json={"role": "user", "content": "x", "session_id": "maya-device-1"},
    )
    _error(response, 404, "NotFound")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"role": "narrator", "content": "x"}, "role"),
        ({"role": "user"}, "content"),
        ({"role": "user", "content": ""}, "content"),
        ({"role": "user", "content": "a\x00b"}, "content"),
        ({"role": "user", "content": "x", "timestamp": 1e20}, "timestamp"),
        ({"role": "user", "content": "x", "tokens": "many"}, "tokens"),
        ({"role": "user", "content": "x", "extra": 1}, "extra"),
        ({"role": "user", "content": "x", "session_id": ""}, ""),
    ],
)
def test_bad_messages_are_422(maya, body, needle):
    cid = new_conversation(maya)
    message = _error(maya.post(f"/v1/conversations/{cid}/messages", json=body), 422)
    assert needle in message
    assert "a\x00b" not in message  # never the value sent


def test_conversations_bad_input(maya, admin):
    _error(maya.get("/v1/conversations", params={"limit": 0}), 422)
    _error(maya.get("/v1/conversations", params={"offset": -1}), 422)
    _error(admin.get("/v1/conversations"), 422)  # the admin must say for whom
    _error(admin.post("/v1/conversations", json={"user_id": "nobody"}), 404, "NotFound")
    cid = new_conversation(maya)
    _error(maya.patch(f"/v1/conversations/{cid}", json={"status": "deleted"}), 422)
    _error(maya.post("/v1/sessions/unknown-session/end"), 404, "NotFound")
    _error(
        maya.post(
            "/v1/conversations", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        422,
    )


def test_admin_acts_for_a_named_user(admin, maya):
    made = admin.post("/v1/conversations", json={"user_id": "maya", "title": "from admin"})
    assert made.status_code == 201 and made.json()["user_id"] == "maya"
    assert maya.get(f"/v1/conversations/{made.json()['id']}").status_code == 200


# ---- context and search ------------------------------------------------------------------


def test_context_items_have_source_and_score(maya):
    cid = new_conversation(maya, "marathon")
    say(maya, cid, "I am training for the Berlin half marathon in April")
    maya.post(f"/v1/sessions/{cid}/end")
    maya.post("/v1/facts", json={"content": "Maya trains for the Berlin half marathon"})
    now = new_conversation(maya, "today")
    say(maya, now, "my knee hurts after the long run")
    body = maya.post(
        "/v1/context", json={"conversation_id": now, "query": "Berlin half marathon training"}
    ).json()
    sources = {item["source"] for item in body["items"]}
    assert sources == {"working", "fact", "memory"}, body
    for item in body["items"]:
        if item["source"] == "working":
            assert item["score"] is None and item["role"] == "user"
        else:
            assert 0.0 < item["score"] <= 1.0
    assert "Things you know about the user:" in body["prompt"]
    assert "my knee hurts" in body["prompt"]
    assert body["token_estimate"] <= body["max_tokens"] == 1500


def test_context_and_search_bad_input(maya):
    _error(maya.post("/v1/context", json={"query": "x"}), 422)  # no session
    _error(maya.post("/v1/context", json={"session_id": "s", "query": "x", "max_tokens": 0}), 422)
    _error(maya.post("/v1/search", json={"query": "x", "mode": "psychic"}), 422)
    _error(maya.post("/v1/search", json={"query": "x", "k": -1}), 422)
    _error(maya.post("/v1/search", json={"query": "x" * 20_000}), 422)
    _error(maya.post("/v1/search", json={}), 422)


def test_search_modes_and_scores(api, maya):
    cid = new_conversation(maya, "cooking")
    say(maya, cid, "I baked sourdough bread with rye flour")
    maya.post(f"/v1/sessions/{cid}/end")
    # end_session leaves a small batch to the outbox job (off in this module's server).
    api.memory.sync.semantic.process_outbox()
    for mode in ("hybrid", "bm25", "dense"):
        results = maya.post("/v1/search", json={"query": "sourdough rye", "mode": mode}).json()
        assert results["results"], mode
        top = results["results"][0]
        assert "sourdough" in top["text"] and top["conversation_id"] == cid
        assert 0.0 <= top["score"] <= 1.0
    filtered = maya.post(
        "/v1/search", json={"query": "sourdough", "conversation_id": "0" * 32}
    ).json()
    assert filtered["results"] == []


# ---- facts and feedback -------------------------------------------------------------------


def test_facts_crud_and_revisit(maya):
    made = maya.post(
        "/v1/facts", json={"content": "Loves rye bread", "category": "food", "is_favorite": True}
    )
    assert made.status_code == 201
    fid = made.json()["fact_id"]
    assert fid in {f["fact_id"] for f in maya.get("/v1/facts").json()["facts"]}
    food = maya.get("/v1/facts", params={"category": "food", "favorites_only": "true"}).json()
    assert [f["fact_id"] for f in food["facts"]] == [fid]
    edited = maya.patch(f"/v1/facts/{fid}", json={"content": "Loves dark rye bread"})
    assert edited.json()["content"] == "Loves dark rye bread"
    assert maya.post(f"/v1/facts/{fid}/revisit").json()["revisit_count"] == 1
    assert maya.get(f"/v1/facts/{fid}").json()["revisit_count"] == 1
    assert maya.delete(f"/v1/facts/{fid}").status_code == 204
    _error(maya.get(f"/v1/facts/{fid}"), 404, "NotFound")


def test_facts_bad_input(maya):
    _error(maya.post("/v1/facts", json={"content": ""}), 422)
    _error(maya.post("/v1/facts", json={"content": "x", "confidence": 2.0}), 422)
    _error(maya.post("/v1/facts", json={"content": "x" * 10_001}), 422)
    fid = maya.post("/v1/facts", json={"content": "ok"}).json()["fact_id"]
    _error(maya.patch(f"/v1/facts/{fid}", json={"is_favorite": "yes"}), 422)
    _error(maya.patch(f"/v1/facts/{fid}", json={"owner": "bob"}), 422)
    _error(maya.get("/v1/facts", params={"limit": 0}), 422)


def test_feedback(maya, bob):
    cid = new_conversation(maya)
    mid = say(maya, cid, "what should I eat?")
    made = maya.post(
        "/v1/feedback",
        json={"event_type": "rating", "rating": 4, "message_id": mid, "conversation_id": cid},
    )
    assert made.status_code == 201 and made.json()["rating"] == 4
    assert maya.post("/v1/feedback", json={"event_type": "thumbs_up"}).status_code == 201
    listed = maya.get("/v1/feedback").json()["feedback"]
    assert {e["event_type"] for e in listed} >= {"rating", "thumbs_up"}
    summary = maya.get("/v1/feedback/summary").json()
    assert summary["counts"]["rating"] >= 1 and summary["mean_rating"] is not None
    _error(maya.post("/v1/feedback", json={"event_type": "rating"}), 422)
    _error(maya.post("/v1/feedback", json={"event_type": "meh"}), 422)
    _error(maya.post("/v1/feedback", json={"event_type": "rating", "rating": 9}), 422)
    _error(
        bob.post("/v1/feedback", json={"event_type": "thumbs_up", "message_id": mid}),
        404,
        "NotFound",
    )


# ---- forget ---------------------------------------------------------------------------------


def test_forget_each_grain(admin):
    admin.post("/v1/users", json={"display_name": "Dana", "user_id": "dana"})
    cid = admin.post("/v1/conversations", json={"user_id": "dana"}).json()["id"]
    keep = say(admin, cid, "keep this one")
    drop = say(admin, cid, "drop this one")
    report = admin.post("/v1/forget", json={"grain": "message", "message_id": drop}).json()
    assert report["grain"] == "message" and report["messages"] == 1
    left = admin.get(f"/v1/conversations/{cid}/messages").json()["messages"]
    assert [m["id"] for m in left] == [keep]
    report = admin.post("/v1/forget", json={"grain": "conversation", "conversation_id": cid})
    assert report.json()["conversations"] == 1
    report = admin.post("/v1/forget", json={"grain": "user", "user_id": "dana"}).json()
    assert report["grain"] == "user"
    _error(admin.get("/v1/users/dana"), 404, "NotFound")


def test_forget_bad_input(maya, admin):
    _error(maya.post("/v1/forget", json={}), 422)  # the grain is always explicit
    _error(maya.post("/v1/forget", json={"grain": "conversation"}), 422)
    _error(maya.post("/v1/forget", json={"grain": "message", "conversation_id": "c"}), 422)
    _error(maya.post("/v1/forget", json={"grain": "user", "message_id": "m"}), 422)
    _error(admin.post("/v1/forget", json={"grain": "user"}), 422)  # for whom?
    _error(admin.post("/v1/forget", json={"grain": "user", "user_id": "nobody"}), 404, "NotFound")


def test_forget_me_revokes_the_users_tokens(api, admin):
    admin.post("/v1/users", json={"display_name": "Eli", "user_id": "eli"})
    _, token = token_repo(api.memory.sync).create("eli")
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as eli:
        assert eli.post("/v1/forget", json={"grain": "user"}).status_code == 200
        assert eli.get("/v1/me").status_code == 401  # the token went with the user


# ---- service endpoints ------------------------------------------------------------------


def test_health_ready_openapi_and_unknown_routes(maya, admin, anonymous):
    health = maya.get("/v1/health").json()
    assert health["status"] in ("ok", "degraded") and health["read_only"] is False
    assert health["scheduler"]["running"] is False  # off in this module's server
    assert health["storage"] is None  # the data dir's report is the admin's
    report = admin.get("/v1/health").json()["storage"]
    assert report["status"] in ("ok", "warning", "critical") and report["drift"] is None
    assert {s["name"] for s in report["stores"]} >= {"core", "conversations", "working_memory"}
    assert maya.get("/v1/ready").json() == {"ready": True}
    spec = anonymous.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/v1/context", "/v1/search", "/v1/forget", "/memories", "/search"} <= paths
    assert "/v1/memories/" not in paths  # the client's aliases stay out of the schema
    _error(maya.get("/v1/nope"), 404, "NotFound")
    _error(maya.put("/v1/search", json={}), 405, "MethodNotAllowed")
    assert admin.get("/v1/tasks").json() == {"jobs": [], "history": []}


def test_a_context_is_recorded_as_used_unless_asked_not_to(api, maya):
    core = api.memory.sync.store.connection("core")

    def events() -> int:
        found = core.fetch_value(
            "SELECT count(*) FROM sqlite_master WHERE name = 'analytics_context_events'"
        )
        return (
            int(core.fetch_value("SELECT count(*) FROM analytics_context_events")) if found else 0
        )

    before = events()
    body = {"session_id": "s-rec", "query": "what do I bake", "record": False}
    assert maya.post("/v1/context", json=body).status_code == 200
    assert events() == before  # a preview
    body["record"] = True
    assert maya.post("/v1/context", json=body).status_code == 200
    assert events() == before + 1
