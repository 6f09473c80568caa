"""The client's public names: a change to them is a change to its API, made on purpose."""

import inspect

import client

EXPECTED = [
    "Aborted",
    "AlreadyExists",
    "AsyncClient",
    "AsyncStream",
    "Cancelled",
    "ChunkUpdate",
    "ChunkwiseError",
    "Client",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FileDelta",
    "Internal",
    "InvalidArgument",
    "JsonBuilder",
    "JsonDelta",
    "Mode",
    "NotFound",
    "OutOfRange",
    "Output",
    "PartialJson",
    "PermissionDenied",
    "ProcessorInfo",
    "ProtocolError",
    "ReasoningFile",
    "ReasoningText",
    "ResourceExhausted",
    "Retry",
    "Stream",
    "TextInfo",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "UnrepresentableValue",
    "UpdateError",
]


def test_all_is_pinned():
    assert client.__all__ == EXPECTED


def test_every_exported_name_exists_and_nothing_public_is_left_out():
    for name in client.__all__:
        assert hasattr(client, name), name
    public = {name for name in vars(client) if not name.startswith("_")}
    assert public == set(EXPECTED)


def test_the_sync_and_async_clients_have_the_same_methods_in_the_same_order():
    def methods(cls: type) -> list[str]:
        return [
            name
            for name, value in vars(cls).items()
            if callable(value) and not name.startswith("_")
        ]

    assert methods(client.Client) == methods(client.AsyncClient)
    assert methods(client.Stream) == methods(client.AsyncStream)


def test_both_clients_take_the_same_arguments_with_the_same_defaults():
    arguments = {
        "target": "127.0.0.1:50051",
        "timeout": None,
        "max_receive_bytes": 64 * 1024 * 1024,
        "retries": 4,
        "credentials": None,
        "token": None,
        "channel": None,
        "sleep": None,
        "random_fraction": None,
    }
    for cls in (client.Client, client.AsyncClient):
        parameters = inspect.signature(cls).parameters.values()
        assert {p.name: p.default for p in parameters} == arguments
        assert [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD] == ["target"]
