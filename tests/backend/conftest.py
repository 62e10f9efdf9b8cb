"""Fixtures of the backend tests (helpers in ``backend_support``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

# --import-mode=importlib puts no test folder on sys.path; the support module lives here.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from backend_support import Api, backend_test_config, start_api


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One server per test module (scheduler off), stopped and sealed at the end."""
    running = start_api(tmp_path_factory.mktemp("backend") / "data", backend_test_config())
    yield running
    running.server.stop()


@pytest.fixture
def maya(api: Api) -> Iterator[httpx.Client]:
    with api.client("maya") as client:
        yield client


@pytest.fixture
def bob(api: Api) -> Iterator[httpx.Client]:
    with api.client("bob") as client:
        yield client


@pytest.fixture
def admin(api: Api) -> Iterator[httpx.Client]:
    with api.client("admin") as client:
        yield client


@pytest.fixture
def anonymous(api: Api) -> Iterator[httpx.Client]:
    with api.client(None) as client:
        yield client
