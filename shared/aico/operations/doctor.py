"""``doctor(data_dir)``: find every kind of damage a data dir can have; ``repair=True`` heals
what can be healed from the log.

The checks (``_doctor_checks``, in this order) run on stores opened read-only, so a
diagnosis writes nothing (not even a seal) and works on read-only media:

==================  ====================================================================
check               what
==================  ====================================================================
open / seal         each database opens: its seal (a clean close) or, unsealed, the
                    ``quick_check`` and commit-counter checks of an unclean close
integrity           ``PRAGMA integrity_check`` (it includes FTS5's own check)
schema              schemas behind the code
working memory      LMDB's file checks, its close seal and key
index / files       the Chroma index's condition and the file checks made before
                    chromadb may open it (manifest of a clean close, HNSW structure)
drift               log vs segments vs FTS5 rows vs vectors vs Chroma ids
backlog             outboxes, forgets and consolidations a crash left queued
sessions            session counts against the log; working memory against the log
==================  ====================================================================

A diagnosis needs the key (a wrong passphrase is an error, not damage); a missing or
damaged key file is itself a finding. ``repair=True`` then repairs (``_doctor_repair``)
and diagnoses again: the report has both. A damaged database is never "repaired" in
place: the newest backup that verifies is offered (``choose``), or the manual options.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from aico.ai.memory.stores import configured_encoder, open_data_store
from aico.config import Config, load_config, resolve_data_dir
from aico.errors import IntegrityError, KeyFileError, ReadOnly, StoreBusy
from aico.layout import DataDir
from aico.operations._doctor_checks import CHECKS, Finding, Probe, Status
from aico.operations._doctor_repair import (
    RepairAction,
    RestoreChooser,
    broken_databases,
    repair_store,
    restore_offer,
)

if TYPE_CHECKING:
    from aico.ai.embeddings import Encoder

__all__ = ["DoctorReport", "Finding", "RepairAction", "RestoreChooser", "doctor"]


@dataclass(frozen=True)
class DoctorReport:
    """``findings``: before any repair; ``repaired`` and ``after``: with ``repair=True``."""

    data_dir: str
    findings: tuple[Finding, ...]
    repaired: tuple[RepairAction, ...] = ()
    after: tuple[Finding, ...] | None = None
    took_s: float = 0.0

    @property
    def final(self) -> tuple[Finding, ...]:
        """The findings that stand: after the repair if there was one."""
        return self.after if self.after is not None else self.findings

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.final if f.status == "problem")

    @property
    def status(self) -> Status:
        levels = {f.status for f in self.final}
        return "problem" if "problem" in levels else "warning" if "warning" in levels else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


def _diagnose(
    layout: DataDir,
    *,
    config: Config,
    passphrase: str | None,
    env: Mapping[str, str] | None,
    interactive: bool | None,
    encoder: Encoder | None,
    clock: Callable[[], float],
) -> list[Finding]:
    try:
        store = open_data_store(
            layout,
            passphrase=passphrase,
            config=config,
            env=env,
            interactive=interactive,
            read_only=True,
        )
    except (KeyFileError, IntegrityError) as exc:
        return [
            Finding(
                "key",
                "key_file",
                "problem",
                str(exc),
                "restore keys/master.key from a backup: without it nothing can be decrypted",
            )
        ]
    except ReadOnly as exc:
        return [Finding("key", "key_file", "problem", str(exc), "run 'aico keys rotate'")]
    probe = Probe(store=store, config=config, encoder=encoder, now=clock())
    try:
        probe.others = store.other_holders()
        for check in CHECKS:
            check(probe)
        return probe.findings
    finally:
        probe.close()
        store.close()


def doctor(
    data_dir: str | os.PathLike[str] | DataDir | None = None,
    *,
    repair: bool = False,
    config: Config | None = None,
    passphrase: str | None = None,
    env: Mapping[str, str] | None = None,
    interactive: bool | None = None,
    encoder: Encoder | None = None,
    clock: Callable[[], float] = time.time,
    choose: RestoreChooser | None = None,
) -> DoctorReport:
    """Diagnose the data dir (module docstring); with ``repair``, repair and diagnose again.

    ``choose(database, backup)`` is asked before a verified backup is restored over a
    damaged database (only when the backup module can restore; else the report says how).
    The key comes from the usual unlock sources (``passphrase``, keyring, environment,
    prompt); backups are verified only with an explicit ``passphrase``.
    """
    started = time.perf_counter()
    config = config or load_config(env=env)
    layout = DataDir.of(data_dir if data_dir is not None else resolve_data_dir(config, env))
    encoder = encoder or configured_encoder(config)
    kwargs: dict[str, Any] = {
        "config": config,
        "passphrase": passphrase,
        "env": env,
        "interactive": interactive,
        "encoder": encoder,
        "clock": clock,
    }
    before = _diagnose(layout, **kwargs)
    if not repair or not any(f.status != "ok" for f in before) or _key_problem(before):
        return DoctorReport(str(layout.root), tuple(before), took_s=time.perf_counter() - started)
    _require_alone(layout, config=config, passphrase=passphrase, env=env, interactive=interactive)
    actions: list[RepairAction] = []
    current = before
    broken = broken_databases(layout, current)
    if broken:
        offer = restore_offer(
            layout, config, broken, passphrase=passphrase, encoder=encoder, choose=choose
        )
        actions.append(offer)
        if offer.done:
            current = _diagnose(layout, **kwargs)
    store = open_data_store(
        layout, passphrase=passphrase, config=config, env=env, interactive=interactive
    )
    actions += repair_store(store, current, config=config, encoder=encoder, clock=clock)
    after = _diagnose(layout, **kwargs)
    return DoctorReport(
        str(layout.root),
        tuple(before),
        tuple(actions),
        tuple(after),
        took_s=time.perf_counter() - started,
    )


def _require_alone(layout: DataDir, **open_kwargs: Any) -> None:
    """``StoreBusy`` (naming the pids) while another store has the data dir open.

    A repair moves working memory aside, rebuilds Chroma (which one process owns) and may
    restore a backup: a running service would keep writing to what is replaced under it.
    """
    store = open_data_store(layout, read_only=True, **open_kwargs)
    try:
        others = store.other_holders()
    finally:
        store.close()
    if others:
        pids = ", ".join(str(p) for p in others)
        raise StoreBusy(
            f"the data dir {layout.root} is open in another process (pid {pids}); stop it "
            "(the service, another aico command) before 'aico doctor --repair'",
            pids=others,
        )


def _key_problem(findings: list[Finding]) -> bool:
    return any(f.store == "key_file" and f.status == "problem" for f in findings)
