"""Server settings: defaults from the contract, validation naming the field, flags."""

import os
import subprocess
import sys
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

from server.cli import build_parser, environment_variable, parse_config
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
    assert (config.log_level, config.log_format) == ("INFO", "auto")
    assert config.event_loop == "auto"
    assert config.worker_nice == 19
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
        ("log_format", "xml"),
        ("event_loop", "tokio"),
        ("worker_nice", -1),
        ("worker_nice", 20),
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
            "--max-response-bytes=67",
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
        max_response_bytes=67,
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


def test_the_response_limit_holds_a_text_chunks_response(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/limits.md: a `text` response is at most the chunk, the id and 64 bytes, and it
    is never measured, so --max-response-bytes must hold that much."""
    flags = ["--max-chunk-bytes=1000", "--max-id-bytes=36"]
    assert parse_config([*flags, "--max-response-bytes=1100"]).max_response_bytes == 1100
    with pytest.raises(SystemExit) as exit_info:
        parse_config([*flags, "--max-response-bytes=1099"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "--max-response-bytes" in error and "at least 1100, got 1099" in error


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


# -- environment variables: "every flag can also be set by CHUNKWISE_<FLAG>; a flag wins"


def test_every_setting_has_its_variable_and_the_help_names_it() -> None:
    environ = {environment_variable(s.name): "" for s in fields(Config)}
    assert "CHUNKWISE_MAX_ID_BYTES" in environ and "CHUNKWISE_TLS_CLIENT_CA" in environ
    usage = build_parser({}).format_help()
    for variable in environ:
        assert variable in usage


@pytest.mark.parametrize(
    ("variable", "text", "expected"),
    [
        ("CHUNKWISE_MAX_IDS", "7", {"max_ids": 7}),
        ("CHUNKWISE_IDLE_TTL", "2.5", {"idle_ttl": 2.5}),
        ("CHUNKWISE_LOG_LEVEL", "debug", {"log_level": "DEBUG"}),
        ("CHUNKWISE_LOG_FORMAT", "JSON", {"log_format": "json"}),
        ("CHUNKWISE_HOST", "0.0.0.0", {"host": "0.0.0.0"}),
        ("CHUNKWISE_AUTH_TOKENS", "t.txt", {"auth_tokens": Path("t.txt")}),
    ],
)
def test_a_variable_sets_its_setting_and_its_flag_wins(
    variable: str, text: str, expected: dict[str, object]
) -> None:
    assert parse_config([], {variable: text}) == Config(**expected)
    name = next(iter(expected))
    flag_value = {"max_ids": "9", "idle_ttl": "4", "log_level": "ERROR", "host": "::1"}
    flag_value["log_format"] = "logfmt"
    flag_value["auth_tokens"] = "u.txt"
    flags = [f"--{name.replace('_', '-')}={flag_value[name]}"]
    assert parse_config(flags, {variable: text}) == parse_config(flags, {}) != Config(**expected)


@pytest.mark.parametrize(
    ("variable", "text", "says"),
    [
        ("CHUNKWISE_MAX_IDS", "many", "CHUNKWISE_MAX_IDS='many' (--max-ids)"),
        ("CHUNKWISE_LOG_LEVEL", "loud", "CHUNKWISE_LOG_LEVEL='loud' (--log-level)"),
        ("CHUNKWISE_LOG_FORMAT", "xml", "CHUNKWISE_LOG_FORMAT='xml' (--log-format)"),
        ("CHUNKWISE_PORT", "70000", "port"),
        ("CHUNKWISE_MAX_IDS", "0", "max_ids"),
    ],
)
def test_a_bad_variable_exits_with_usage_naming_the_setting(
    capsys: pytest.CaptureFixture[str], variable: str, text: str, says: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_config([], {variable: text})
    assert exit_info.value.code == 2
    assert says in capsys.readouterr().err


def test_the_server_reads_its_variables_from_the_environment() -> None:
    """Through `python -m server` itself: the variable's bad value stops it with status 2."""
    run = subprocess.run(
        [sys.executable, "-m", "server"],
        env={**os.environ, "CHUNKWISE_MAX_JSON_DEPTH": "deep"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "CHUNKWISE_MAX_JSON_DEPTH='deep' (--max-json-depth)" in run.stderr
