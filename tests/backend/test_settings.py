"""``[backend]`` settings: unknown keys and bad values are errors naming the key; the Host
names a bound address accepts; serving on a Unix socket; ``aico serve`` never runs locked."""

from __future__ import annotations

import re

import httpx
import pytest
from backend_support import LiveServer, backend_test_config, make_data_dir, token_repo
from click.testing import CliRunner

from aico.ai.memory import AsyncMemoryManager
from aico.config import load_config
from aico.errors import ConfigError
from aico_backend import BackendSettings


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[backend]\ncolour = 'red'\n", "unknown config key 'backend.colour'"),
        ("[backend.scheduler]\nnope = 1\n", "unknown config key 'backend.scheduler.nope'"),
        ("[backend]\nport = 'high'\n", "'backend.port' must be an integer"),
        ("[backend]\ncors_origins = 'x'\n", "'backend.cors_origins' must be a list"),
    ],
)
def test_unknown_keys_and_bad_types_are_rejected(tmp_path, text, match):
    path = tmp_path / "aico.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(match)):
        load_config(path, env={})


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"port": 70000}, "backend.port"),
        ({"port": 0}, "backend.port"),
        ({"workers": 0}, "backend.workers"),
        ({"max_body_bytes": -1}, "backend.max_body_bytes"),
        ({"allowed_hosts": [1]}, "backend.allowed_hosts"),
        ({"host": ""}, "backend.host"),
        ({"scheduler": {"retry_s": 0.0}}, "backend.scheduler.retry_s"),
    ],
)
def test_bad_values_name_the_key(overrides, match):
    config = load_config(env={}, overrides={"backend": overrides})
    with pytest.raises(ConfigError, match=re.escape(match)):
        BackendSettings.from_config(config)


def test_defaults_and_env():
    settings = BackendSettings.from_config(load_config(env={"AICO_BACKEND__PORT": "9001"}))
    assert (settings.host, settings.port, settings.loopback) == ("127.0.0.1", 9001, True)
    assert settings.scheduler.outbox_interval_s == 60.0 and settings.cors_origins == ()


def test_host_names():
    loopback = BackendSettings(port=8765)
    assert loopback.host_names(8765) == {
        "127.0.0.1:8765",
        "localhost:8765",
        "[::1]:8765",
    }
    lan = BackendSettings(host="192.168.1.20", allowed_hosts=("aico.example.ts.net",))
    assert not lan.loopback
    assert lan.host_names(80) == {
        "192.168.1.20:80",
        "192.168.1.20",
        "aico.example.ts.net:80",
        "aico.example.ts.net",
    }
    assert "[::1]:5" in BackendSettings(host="::1").host_names(5)


def test_serving_on_a_unix_socket(tmp_path):
    manager = make_data_dir(tmp_path / "data", backend_test_config())
    _, token = token_repo(manager).create("maya")
    socket_path = tmp_path / "aico.sock"
    settings = BackendSettings.from_config(backend_test_config()).with_uds(str(socket_path))
    server = LiveServer(AsyncMemoryManager.from_manager(manager), settings).start()
    try:
        transport = httpx.HTTPTransport(uds=str(socket_path))
        with httpx.Client(
            transport=transport,
            base_url="http://aico",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            assert client.get("/v1/me").json()["user"]["user_id"] == "maya"
    finally:
        server.stop()


def test_aico_serve_refuses_to_start_locked(tmp_path):
    from aico.cli.main import cli
    from aico.security import KdfParams

    p = KdfParams.for_tests()
    env = {
        "AICO_DATA_DIR": str(tmp_path / "data"),
        "AICO_PASSPHRASE": "pw",
        "AICO_SECURITY__USE_KEYRING": "false",
        "AICO_SECURITY__KDF_TIME_COST": str(p.time_cost),
        "AICO_SECURITY__KDF_MEMORY_COST_KIB": str(p.memory_cost_kib),
        "AICO_SECURITY__KDF_PARALLELISM": str(p.parallelism),
        "AICO_CONFIG": "",
    }
    assert CliRunner().invoke(cli, ["init"], env=env).exit_code == 0
    locked = {**env, "AICO_PASSPHRASE": ""}
    assert CliRunner().invoke(cli, ["serve", "--port", "0"], env=locked).exit_code == 2
    result = CliRunner().invoke(cli, ["serve"], env=locked)
    assert result.exit_code == 1 and result.output.startswith("Error:"), result.output
    wrong = CliRunner().invoke(cli, ["serve"], env={**env, "AICO_PASSPHRASE": "nope"})
    assert wrong.exit_code == 1 and "wrong passphrase" in wrong.output.lower()
