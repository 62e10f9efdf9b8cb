"""``TokenRepository`` and ``TaskRepository`` on a real encrypted core database."""

from __future__ import annotations

import pytest

from aico.data.repositories import TOKEN_HASH_PURPOSE, TaskRepository, TokenRepository, UserService
from aico.errors import InvalidInput, NotFound
from aico.security import MasterKey


@pytest.fixture
def core(store):
    conn = store.connection("core")
    UserService(conn).create_user("Maya", user_id="maya")
    return conn


@pytest.fixture
def tokens(store, core):
    key = store.master_key
    return TokenRepository(core, key.subkey(TOKEN_HASH_PURPOSE), key_id=key.key_id)


def test_a_token_is_kept_only_as_its_keyed_hash(tokens, core):
    row, secret = tokens.create("maya", label="phone")
    assert secret.startswith(f"aico_{row.token_id}_") and len(secret) == 5 + 16 + 1 + 43
    stored = core.fetch_all("SELECT * FROM api_tokens")
    assert len(stored) == 1
    values = [v for v in stored[0].values() if v is not None]
    secret_part = secret.rsplit("_", 1)[1]
    assert not any(
        secret_part in str(v) or secret_part.encode() in bytes(str(v), "utf-8") for v in values
    )
    assert bytes(stored[0]["token_hash"]) != secret.encode()
    assert tokens.verify(secret).user_id == "maya"


@pytest.mark.parametrize(
    "bad",
    [None, 42, "", "aico_", "aico_zz_" + "A" * 43, "x" * 500, "aico_0123456789abcdef_" + "A" * 43],
)
def test_malformed_or_unknown_tokens_do_not_verify(tokens, bad):
    tokens.create("maya")
    assert tokens.verify(bad) is None


def test_revoked_tampered_and_rotated_tokens_do_not_verify(tokens, core):
    row, secret = tokens.create("maya")
    assert tokens.verify(secret[:-1] + ("x" if secret[-1] != "x" else "y")) is None
    rotated = TokenRepository(core, MasterKey.generate().subkey(TOKEN_HASH_PURPOSE))
    assert rotated.verify(secret) is None  # a new master key voids every token
    tokens.revoke(row.token_id)
    assert tokens.verify(secret) is None
    assert tokens.revoke(row.token_id).revoked_at is not None  # idempotent
    assert tokens.list() == [] and len(tokens.list(include_revoked=True)) == 1


def test_one_live_admin_token(tokens):
    first, _ = tokens.create(admin=True)
    with pytest.raises(InvalidInput, match="admin token exists"):
        tokens.create(admin=True)
    second, secret = tokens.create(admin=True, replace=True)
    assert tokens.get(first.token_id).revoked_at is not None
    assert tokens.verify(secret).is_admin and second.user_id is None


def test_token_arguments(tokens):
    with pytest.raises(InvalidInput):
        tokens.create()
    with pytest.raises(InvalidInput):
        tokens.create("maya", admin=True)
    with pytest.raises(NotFound, match="no user"):
        tokens.create("nobody")
    with pytest.raises(NotFound):
        tokens.revoke("0123456789abcdef")
    with pytest.raises(InvalidInput):
        TokenRepository(tokens.conn, b"short")


def test_a_users_tokens_go_with_the_user(tokens, core):
    _, secret = tokens.create("maya")
    UserService(core).delete_user("maya")
    assert tokens.verify(secret) is None and tokens.list(include_revoked=True) == []


def test_touch_records_use(tokens):
    row, _ = tokens.create("maya")
    tokens.touch(row.token_id, 1234.5)
    assert tokens.get(row.token_id).last_used_at == 1234.5


def test_core_v3_rolls_back_and_forward(store):
    store.rollback(schema="core", to=2)
    assert (
        store.connection("core").fetch_value(
            "SELECT count(*) FROM sqlite_master WHERE name = 'api_tokens'"
        )
        == 0
    )
    store.migrate()
    assert (
        store.connection("core").fetch_value(
            "SELECT count(*) FROM sqlite_master WHERE name = 'api_tokens'"
        )
        == 1
    )


# ---- tasks -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def tasks(core, clock):
    return TaskRepository(core, clock=clock)


def test_a_job_is_claimed_once_and_finished(tasks, clock):
    job = tasks.schedule("sweep", "sweep", every=60)
    assert (job.status, job.next_run_at, job.schedule, job.interval_s) == (
        "pending",
        1000.0,
        "every 60s",
        60.0,
    )
    assert [t.task_id for t in tasks.due(1000.0)] == ["sweep"]
    claimed = tasks.start("sweep")
    assert claimed.status == "running" and claimed.attempts == 1
    assert tasks.start("sweep") is None  # no second run while one is running
    assert tasks.due(5000.0) == []
    done = tasks.complete("sweep", next_run_at=1060.0, result={"swept": 3})
    assert (done.status, done.attempts, done.payload) == (
        "completed",
        0,
        {"last_result": {"swept": 3}},
    )
    with pytest.raises(NotFound):
        tasks.complete("sweep", next_run_at=1.0)  # not running any more


def test_failures_count_attempts_until_a_success(tasks):
    tasks.schedule("job", "job", every=60)
    tasks.start("job")
    failed = tasks.fail("job", "StorageFull: the disk is full", next_run_at=1010.0)
    assert (failed.status, failed.attempts, failed.last_error) == (
        "failed",
        1,
        "StorageFull: the disk is full",
    )
    assert tasks.start("job").attempts == 2
    long = tasks.fail("job", "E" * 2000, next_run_at=1030.0)
    assert len(long.last_error) == 500
    tasks.start("job")
    assert tasks.complete("job", next_run_at=2000.0).attempts == 0


def test_rescheduling_keeps_state_and_recover_retries(tasks, clock):
    tasks.schedule("job", "job", every=600)
    tasks.start("job")
    tasks.complete("job", next_run_at=1600.0)
    clock.now = 1100.0
    again = tasks.schedule("job", "job", every=600)
    assert again.next_run_at == 1600.0 and again.status == "completed"  # place kept
    sooner = tasks.schedule("job", "job", every=60)
    assert sooner.next_run_at == 1060.0  # one new period after the last run
    tasks.start("job")
    clock.now = 1200.0
    assert tasks.recover() == ["job"]
    job = tasks.get("job")
    assert (job.status, job.next_run_at) == ("failed", 1200.0) and "interrupted" in job.last_error
    assert tasks.recover() == []


def test_run_history_is_pruned_per_job(tasks, clock):
    job = tasks.schedule("a", "a", every=60)
    other = tasks.schedule("a_b", "a_b", every=60)  # '_' is a LIKE wildcard: escaped
    for i in range(5):
        clock.now = 2000.0 + i
        tasks.record_run(
            job,
            status="completed",
            started_at=clock.now,
            finished_at=clock.now,
            result={"n": i},
            keep=3,
        )
    tasks.record_run(other, status="failed", started_at=1.0, finished_at=2.0, error="X: y")
    runs = tasks.history("a")
    assert [r.payload["result"]["n"] for r in runs] == [4, 3, 2]
    assert [r.task_id.split("@")[0] for r in tasks.history("a_b")] == ["a_b"]
    assert len(tasks.history()) == 4
    assert {t.task_id for t in tasks.jobs()} == {"a", "a_b"}
    with pytest.raises(InvalidInput):
        tasks.schedule(runs[0].task_id, "a", every=60)  # a run is not a job
    with pytest.raises(InvalidInput):
        tasks.record_run(job, status="running", started_at=1.0, finished_at=2.0)
    with pytest.raises(InvalidInput):
        tasks.schedule("b", "b", every=0)
