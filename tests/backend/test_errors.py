"""Every aico error has one status; a 5xx never carries internals or user text."""

from __future__ import annotations

import inspect
import logging

import pytest

from aico import errors as E
from aico_backend.errors import status_of

EXPECTED = {
    "InvalidInput": 422,
    "NotFound": 404,
    "ConstraintViolation": 409,
    "ReadOnly": 409,
    "StoreClosed": 503,
    "DatabaseBusy": 503,
    "StoreBusy": 503,
    "StorageFull": 507,
    "ModelMismatch": 503,
    "IndexDamaged": 503,
}


def _kinds():
    for name in E.__all__:
        kind = getattr(E, name)
        if inspect.isclass(kind) and issubclass(kind, E.AicoError):
            yield kind


def _instance(kind):
    if kind in (E.DatabaseCorrupted,):
        return kind("damaged", path="/x", store="core")
    return kind("message")


@pytest.mark.parametrize("kind", list(_kinds()), ids=lambda k: k.__name__)
def test_every_aico_error_has_a_status(kind):
    status = status_of(_instance(kind))
    assert status == EXPECTED.get(kind.__name__, 500)


SECRET = "my-diary-entry-about-ana"


def test_5xx_bodies_and_logs_hold_no_internals(api, maya, caplog):
    def boom_unexpected():
        raise RuntimeError(f"driver said: {SECRET} at /data/db/core/aico.db")

    def boom_corrupt():
        raise E.DatabaseCorrupted(f"{SECRET} /data/db/core/aico.db", path="/data", store="core")

    def boom_full():
        raise E.StorageFull(f"no space writing {SECRET}")

    app = api.server.app
    app.add_api_route("/v1/_test/unexpected", boom_unexpected)
    app.add_api_route("/v1/_test/corrupt", boom_corrupt)
    app.add_api_route("/v1/_test/full", boom_full)
    with caplog.at_level(logging.INFO):
        unexpected = maya.get("/v1/_test/unexpected")
        corrupt = maya.get("/v1/_test/corrupt")
        full = maya.get("/v1/_test/full")
    assert unexpected.status_code == 500
    assert unexpected.json()["error"]["type"] == "InternalError"
    assert corrupt.status_code == 500 and corrupt.json()["error"]["type"] == "DatabaseCorrupted"
    assert full.status_code == 507 and full.json()["error"]["type"] == "StorageFull"
    for response in (unexpected, corrupt, full):
        assert SECRET not in response.text and "/data" not in response.text
    assert "RuntimeError" in caplog.text  # the log says what failed, by type and frames
    assert SECRET not in caplog.text


def test_4xx_messages_are_aicos_and_name_no_value(maya):
    response = maya.post("/v1/facts", json={"content": SECRET, "confidence": 7})
    assert response.status_code == 422
    assert SECRET not in response.text
    response = maya.post("/v1/facts", json={"content": 12345678})
    assert "12345678" not in response.text
