"""Unary errors carry google.rpc.Status details beside their code and message: BadRequest
naming the field for INVALID_ARGUMENT, ResourceInfo naming the id for NOT_FOUND,
QuotaFailure naming the setting for a limit. Read through the Python client, which exposes
them as `error.details`, and with grpcurl, which prints them."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_server import TIMEOUT
from grpc_status import rpc_status

from client import Client
from client import InvalidArgument as ClientInvalidArgument
from client import NotFound as ClientNotFound
from server import _convert
from server.engine import InvalidArgument, NotFound, ResourceExhausted

GRPCURL = Path(sys.executable).parent / "grpcurl"


def test_not_found_names_the_id_in_a_resource_info(grpc_server) -> None:
    chunk_id = f"missing-{uuid.uuid4().hex[:8]}"
    with Client(grpc_server.address) as chunkwise, pytest.raises(ClientNotFound) as raised:
        chunkwise.get_complete_text(chunk_id)
    (detail,) = raised.value.details
    assert isinstance(detail, error_details_pb2.ResourceInfo)
    assert (detail.resource_type, detail.resource_name) == ("chunk id", chunk_id)
    assert detail.description == raised.value.message


@pytest.mark.parametrize("chunk_id", ["", "i" * 257])
def test_a_bad_id_names_the_field_in_a_bad_request(grpc_server, chunk_id: str) -> None:
    with Client(grpc_server.address) as chunkwise, pytest.raises(ClientInvalidArgument) as raised:
        chunkwise.clear_chunk(chunk_id)
    (detail,) = raised.value.details
    assert isinstance(detail, error_details_pb2.BadRequest)
    (violation,) = detail.field_violations
    assert violation.field == "chunk_id" and violation.description == raised.value.message


def test_a_limit_names_its_setting_in_a_quota_failure() -> None:
    error = ResourceExhausted("5 ids are tracked", subject="--max-ids")
    status = rpc_status.from_call(_Call(error))
    assert status is not None and status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    detail = error_details_pb2.QuotaFailure()
    assert status.details[0].Unpack(detail)
    assert [(v.subject, v.description) for v in detail.violations] == [
        ("--max-ids", "5 ids are tracked")
    ]


def test_an_error_about_no_one_thing_carries_no_details() -> None:
    assert _convert.status_details(InvalidArgument("bad")) == ()
    assert _convert.status_details(NotFound("gone")) == ()


class _Call:
    """What rpc_status.from_call reads of a call, for an error the servicer would send."""

    def __init__(self, error: ResourceExhausted) -> None:
        self._error = error

    def code(self) -> grpc.StatusCode:
        return _convert.status_code(self._error)

    def details(self) -> str:
        return self._error.message

    def trailing_metadata(self):
        return _convert.status_details(self._error)


def test_grpcurl_prints_the_details(grpc_server) -> None:
    chunk_id = f"missing-{uuid.uuid4().hex[:8]}"
    run = subprocess.run(
        [
            str(GRPCURL),
            "-plaintext",
            "-d",
            f'{{"chunk_id": "{chunk_id}"}}',
            grpc_server.address,
            "chunkwise.v1.StreamingParser/GetCompleteText",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode != 0
    assert "Code: NotFound" in run.stderr
    assert "google.rpc.ResourceInfo" in run.stderr and chunk_id in run.stderr, run.stderr
