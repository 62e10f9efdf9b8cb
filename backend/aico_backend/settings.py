"""``BackendSettings``: the ``[backend]`` section of the config, checked once at start."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Any

from aico.config import Config
from aico.errors import ConfigError

__all__ = ["BackendSettings", "SchedulerSettings"]


def _positive(key: str, value: Any) -> Any:
    if isinstance(value, bool) or value <= 0:
        raise ConfigError(f"config key {key!r} must be positive")
    return value


def _strings(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"config key {key!r} must be a list of non-empty strings")
    return tuple(value)


@dataclass(frozen=True)
class SchedulerSettings:
    enabled: bool = True
    sweep_interval_s: float = 300.0
    maintenance_interval_s: float = 300.0
    outbox_interval_s: float = 60.0
    retry_s: float = 30.0
    history_keep: int = 50
    operations: bool = True

    @classmethod
    def from_config(cls, config: Config) -> SchedulerSettings:
        s = config.section("backend.scheduler")
        keys = ("sweep_interval_s", "maintenance_interval_s", "outbox_interval_s", "retry_s")
        for key in (*keys, "history_keep"):
            _positive(f"backend.scheduler.{key}", s[key])
        return cls(
            enabled=bool(s["enabled"]),
            sweep_interval_s=float(s["sweep_interval_s"]),
            maintenance_interval_s=float(s["maintenance_interval_s"]),
            outbox_interval_s=float(s["outbox_interval_s"]),
            retry_s=float(s["retry_s"]),
            history_keep=int(s["history_keep"]),
            operations=bool(s["operations"]),
        )


@dataclass(frozen=True)
class BackendSettings:
    """Where the service listens and what it accepts (see ``data/config/defaults.toml``)."""

    host: str = "127.0.0.1"
    port: int = 8765
    uds: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 4 * 1024 * 1024
    auth_failures_per_minute: int = 10
    workers: int = 4
    graceful_shutdown_s: float = 30.0
    scheduler: SchedulerSettings = SchedulerSettings()

    @classmethod
    def from_config(cls, config: Config) -> BackendSettings:
        s = config.section("backend")
        port = s["port"]
        if not 1 <= port <= 65535:  # not 0: the Host check needs the port clients use
            raise ConfigError("config key 'backend.port' must be between 1 and 65535")
        for key in ("max_body_bytes", "auth_failures_per_minute", "workers", "graceful_shutdown_s"):
            _positive(f"backend.{key}", s[key])
        if not s["host"]:
            raise ConfigError("config key 'backend.host' must not be empty")
        return cls(
            host=s["host"],
            port=port,
            allowed_hosts=_strings("backend.allowed_hosts", s["allowed_hosts"]),
            cors_origins=_strings("backend.cors_origins", s["cors_origins"]),
            max_body_bytes=s["max_body_bytes"],
            auth_failures_per_minute=s["auth_failures_per_minute"],
            workers=s["workers"],
            graceful_shutdown_s=float(s["graceful_shutdown_s"]),
            scheduler=SchedulerSettings.from_config(config),
        )

    def bound(self, *, host: str | None = None, port: int | None = None) -> BackendSettings:
        """The same settings listening elsewhere (``aico serve --host/--port``)."""
        return replace(
            self, host=self.host if host is None else host, port=self.port if port is None else port
        )

    def with_uds(self, path: str) -> BackendSettings:
        return replace(self, uds=path)

    @property
    def loopback(self) -> bool:
        """Bound to a loopback address (or a name for one), so only this machine connects."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False

    def host_names(self, port: int) -> frozenset[str]:
        """The ``Host`` header values a request may carry (DNS-rebinding protection).

        The bound address and the configured names, with the port (and without it when the
        port is 80); on loopback also ``localhost``, ``127.0.0.1`` and ``[::1]``.
        """
        names = {self.host, *self.allowed_hosts}
        if self.loopback:
            names |= {"localhost", "127.0.0.1", "[::1]"}
        result: set[str] = set()
        for name in names:
            name = name.lower()
            if ":" in name and not name.startswith("["):
                name = f"[{name}]"  # a bare IPv6 address
            result.add(f"{name}:{port}")
            if port == 80:
                result.add(name)
        return frozenset(result)
