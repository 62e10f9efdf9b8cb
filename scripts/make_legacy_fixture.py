"""Build the upgrade test's fixture: a data dir as the code at commit ff8ca57 wrote it.

The upgrade test (``tests/ai/memory/test_upgrade.py``) opens this data dir with today's code
and checks that every message, segment and fact survived. Run it against that commit's
package, never against the working tree (the point is the *old* on-disk format)::

    git worktree add --detach /tmp/aico-ff8ca57 ff8ca57
    PYTHONPATH=/tmp/aico-ff8ca57/shared .venv/bin/python scripts/make_legacy_fixture.py \
        tests/fixtures/legacy-ff8ca57.tar.gz
    git worktree remove /tmp/aico-ff8ca57

It uses the hashing encoder (no model weights) and cheap KDF parameters, and writes
``expected.json`` beside the data (what the test must find), all packed into one tarball.
"""

from __future__ import annotations

import json
import sys
import tarfile
import tempfile
from pathlib import Path

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.config import load_config
from aico.data.repositories import FactRepository, UserService
from aico.security import KdfParams

PASSPHRASE = "legacy fixture passphrase"
START = 1_800_000_000.0


def main(out: str) -> None:
    params = KdfParams.for_tests()
    config = load_config(
        env={},
        overrides={
            "security": {
                "use_keyring": False,
                "kdf_time_cost": params.time_cost,
                "kdf_memory_cost_kib": params.memory_cost_kib,
                "kdf_parallelism": params.parallelism,
            }
        },
    )
    now = [START]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        expected: dict[str, object] = {"passphrase": PASSPHRASE, "users": {}}
        with MemoryManager.initialize(
            root, PASSPHRASE, config=config, encoder=HashingEncoder(), clock=lambda: now[0]
        ) as memory:
            core = memory.store.connection("core")
            users = UserService(core)
            for name in ("Maya", "Tom"):
                uid = users.create_user(name).user_id
                facts = FactRepository(core)
                facts.remember(uid, f"{name} likes marker-fact-{name.lower()}", category="likes")
                messages = []
                for s in range(3):
                    session = f"{name.lower()}-session-{s}"
                    for i in range(4):
                        now[0] += 30
                        role = "user" if i % 2 == 0 else "assistant"
                        text = f"{name} message {s}.{i} marker-{name.lower()}-{s}-{i}"
                        mid = memory.store_message(uid, session, role, text)
                        messages.append({"id": mid, "session": session, "text": text})
                    if s < 2:  # the last session stays open (unconsolidated)
                        memory.end_session(session)
                expected["users"][uid] = {  # type: ignore[index]
                    "name": name,
                    "messages": messages,
                    "segments": memory.semantic.count(uid),
                    "facts": [f.content for f in facts.list(uid)],
                }
            expected["clock"] = now[0]
        (root / "expected.json").write_text(json.dumps(expected, indent=1))
        with tarfile.open(out, "w:gz") as tar:
            tar.add(root, arcname="data")


if __name__ == "__main__":
    main(sys.argv[1])
