"""Server settings: defaults from the contract, validation naming the field, flags."""

from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

from server.cli import build_parser, parse_config
from server.config import Config
from server.engine import Limits


def test_defaults_are_the_contracts() -> None:
    config = Config()
    assert (config.host, config.port) == ("127.0.0.1", 50051)
    assert config.max_id_bytes == 256
    assert config.max_chunk_bytes == 1024 * 1024
    assert config.max_message_bytes == 4 * 1024 * 1024
    assert config.max_text_bytes == 16 * 1024 * 1024
    assert config.max_ids == 100_000
    assert config.idle_ttl == 3600
    assert config.max_json_depth == 512
    assert config.grace_period == 10
    assert config.log_level == "WARNING"
    assert config.event_loop == "auto"
    assert (config.tls_cert, config.tls_key, config.tls_client_ca, config.auth_tokens) == (
        None,
        None,
        None,
        None,
    )


def test_config_is_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        Config().port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("port", -1),
        ("port", 65536),
        ("host", ""),
        ("max_id_bytes", 0),
        ("max_chunk_bytes", -5),
        ("max_message_bytes", 0),
        ("max_text_bytes", 0),
        ("max_ids", 0),
        ("idle_ttl", 0),
        ("idle_ttl", float("inf")),
        ("max_json_depth", 0),
        ("grace_period", -1),
        ("grace_period", float("nan")),
        ("log_level", "LOUD"),
        ("event_loop", "tokio"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        Config(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("port", "50051"), ("port", True), ("max_ids", 1.5), ("tls_cert", "cert.pem")],
)
def test_a_value_of_the_wrong_type_is_refused_naming_its_field(field: str, value: object) -> None:
    with pytest.raises(TypeError, match=field):
        Config(**{field: value})


def test_tls_key_and_certificate_come_together() -> None:
    with pytest.raises(ValueError, match="tls_key"):
        Config(tls_cert=Path("cert.pem"))
    with pytest.raises(ValueError, match="tls_client_ca"):
        Config(tls_client_ca=Path("ca.pem"))


def test_limits_carry_the_engine_settings() -> None:
    config = Config(
        max_id_bytes=10,
        max_chunk_bytes=20,
        max_text_bytes=30,
        max_ids=40,
        idle_ttl=50,
        max_json_depth=60,
        max_memory_bytes=70,
        tenant_max_ids=8,
        tenant_max_memory_bytes=9,
        max_response_bytes=100,
    )
    assert config.limits() == Limits(
        max_id_bytes=10,
        max_chunk_bytes=20,
        max_text_bytes=30,
        max_ids=40,
        idle_ttl=50.0,
        max_json_depth=60,
        max_memory_bytes=70,
        tenant_max_ids=8,
        tenant_max_memory_bytes=9,
        max_response_bytes=100,
    )


def test_no_flags_give_the_defaults() -> None:
    assert parse_config([]) == Config()


def test_every_limit_has_its_flag() -> None:
    config = parse_config(
        [
            "--host=0.0.0.0",
            "--port=0",
            "--max-id-bytes=1",
            "--max-chunk-bytes=2",
            "--max-message-bytes=3",
            "--max-text-bytes=4",
            "--max-ids=5",
            "--idle-ttl=6.5",
            "--max-json-depth=7",
            "--max-memory-bytes=8",
            "--tenant-max-ids=9",
            "--tenant-max-memory-bytes=10",
            "--max-response-bytes=11",
            "--grace-period=0",
            "--log-level=debug",
            "--event-loop=asyncio",
            "--tls-cert=c.pem",
            "--tls-key=k.pem",
            "--tls-client-ca=ca.pem",
            "--auth-tokens=tokens.txt",
        ]
    )
    assert config == Config(
        host="0.0.0.0",
        port=0,
        max_id_bytes=1,
        max_chunk_bytes=2,
        max_message_bytes=3,
        max_text_bytes=4,
        max_ids=5,
        idle_ttl=6.5,
        max_json_depth=7,
        max_memory_bytes=8,
        tenant_max_ids=9,
        tenant_max_memory_bytes=10,
        max_response_bytes=11,
        grace_period=0.0,
        log_level="DEBUG",
        event_loop="asyncio",
        tls_cert=Path("c.pem"),
        tls_key=Path("k.pem"),
        tls_client_ca=Path("ca.pem"),
        auth_tokens=Path("tokens.txt"),
    )


def test_a_bad_flag_value_exits_with_usage_naming_the_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_config(["--max-ids=0"])
    assert exit_info.value.code == 2
    assert "max_ids" in capsys.readouterr().err


def test_every_config_field_has_a_flag_and_every_flag_a_field() -> None:
    parser = build_parser()
    flags = {
        option: action
        for action in parser._actions
        for option in action.option_strings
        if action.dest != "help"
    }
    by_field = {"--" + setting.name.replace("_", "-"): setting for setting in fields(Config)}
    assert flags.keys() == by_field.keys()
    usage = parser.format_help()
    for option, setting in by_field.items():
        action = flags[option]
        assert (action.dest, action.default) == (setting.name, setting.default)
        assert action.help and option in usage
