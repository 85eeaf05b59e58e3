"""The daemon's configuration: TOML, environment overrides, --source specs, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from f1daemon.config import ControlSettings, load_config, parse_source_spec
from f1daemon.errors import UserError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "f1daemon.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_is_a_working_configuration() -> None:
    config = load_config(None, environ={})
    assert config.sources == ()
    assert config.control.max_line_bytes == 64 * 1024
    assert config.supervision.breaker_failures == 3
    assert config.supervision.breaker_reset_s == 60.0
    assert config.store_url.startswith("sqlite:///")


def test_file_and_environment_are_combined(tmp_path: Path) -> None:
    recording = tmp_path / "capture.txt"
    recording.write_text("", encoding="utf-8")
    path = write(
        tmp_path,
        f"""
[daemon]
state_dir = "{tmp_path}"
[metrics]
port = 9100
[[sources]]
name = "capture"
kind = "recording"
path = "{recording}"
speed = 2.5
""",
    )
    env = {
        "F1DAEMON_METRICS_PORT": "9200",
        "F1DAEMON_CONTROL_MODE": "0640",
        "F1DAEMON_CONTROL_ALLOWED_UIDS": "1000, 1001",
        "F1DAEMON_STORE": "postgresql://f1@db.example/f1",
    }
    config = load_config(path, environ=env)
    assert config.metrics.port == 9200  # the environment wins over the file
    assert config.control.mode == 0o640  # read as octal, as file modes are written
    assert config.control.allowed_uids == (1000, 1001)
    assert config.store_url == "postgresql://f1@db.example/f1"
    assert config.sources[0].speed == 2.5
    assert config.store_url != f"sqlite:///{tmp_path / 'events.db'}"
    assert load_config(path, environ={}).store_url == f"sqlite:///{tmp_path / 'events.db'}"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[metrics]\nport = 70000\n", {}, "metrics.port: Input should be less than or equal"),
        ("[metrics]\nprot = 1\n", {}, "metrics.prot: Extra inputs are not permitted"),
        ("[daemon\n", {}, "not valid TOML"),
        ("[daemon]\nstore = 'mysql://x'\n", {}, "unsupported store URL"),
        ("", {"F1DAEMON_SUPERVISION_BREAKER_FAILURES": "zero"}, "breaker_failures"),
        ("", {"F1DAEMON_CONTROL_MODE": "rw"}, "not an octal file mode"),
        ("[[sources]]\nname = 'x'\nkind = 'recording'\n", {}, "a recording needs a path"),
        (
            "[[sources]]\nname = 'a'\nkind = 'simulator'\n" * 2,
            {},
            "source names must be unique: a",
        ),
        ("[[sources]]\nname = 'x'\nkind = 'telnet'\n", {}, "sources.0.kind"),
        (
            "[[sources]]\nname = 'x'\nkind = 'live'\ntoken_file = '/t'\ntoken_env = 'T'\n",
            {},
            "give token_file or token_env, not both",
        ),
        ("[[sources]]\nname = 'x'\nkind = 'live'\ntopics = []\n", {}, "sources.0.topics"),
        # A URL the source could never use is refused at load, not when it starts.
        (
            "[[sources]]\nname = 'x'\nkind = 'live'\nurl = 'livetiming.formula1.com/signalrcore'\n",
            {},
            "url 'livetiming.formula1.com/signalrcore' must start with https:// or http:// "
            "or wss:// or ws:// (got no scheme)",
        ),
        (
            "[[sources]]\nname = 'x'\nkind = 'live'\nurl = 'ftp://hub.example/signalrcore'\n",
            {},
            "url 'ftp://hub.example/signalrcore' must start with https:// or http:// or wss://",
        ),
        (
            "[[sources]]\nname = 'x'\nkind = 'live'\nurl = 'https:///signalrcore'\n",
            {},
            "names no host",
        ),
        ("[[sources]]\nname = 'x'\nkind = 'live'\nurl = 'http://[::1/x'\n", {}, "is not a URL"),
        ("[[sources]]\nname = 'x'\nkind = 'live'\nurl = 'http://h:99999/x'\n", {}, "is not a URL"),
        (
            "[[sources]]\nname = 'x'\nkind = 'live'\ntopics = ['Timing Data']\n",
            {},
            "not topic names",
        ),
        (
            "[[sources]]\nname = 'x'\nkind = 'forecast'\ncircuit = 'monza'\nurl = 'wss://x/y'\n",
            {},
            "url 'wss://x/y' must start with https:// or http:// (got wss://)",
        ),
        (
            "[[sources]]\nname = 'x'\nkind = 'forecast'\ncircuit = 'nurburgring'\n",
            {},
            "a forecast needs a known circuit (got 'nurburgring'; known: albert_park, ",
        ),
        (
            "[[sources]]\nname = 'x'\nkind = 'results'\nseason = 2024\nresources = ['laps']\n",
            {},
            "laps need a round",
        ),
    ],
)
def test_bad_settings_are_one_clear_line(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserError) as caught:
        load_config(path, environ=env)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read the configuration"):
        load_config(tmp_path / "absent.toml", environ={})


def test_source_specs() -> None:
    assert parse_source_spec("simulator:monaco:7@50") == {
        "kind": "simulator",
        "track": "monaco",
        "name": "simulator-monaco",
        "seed": "7",
        "speed": "50",
    }
    assert parse_source_spec("recording:/data/x.txt@max", 2) == {
        "kind": "recording",
        "path": "/data/x.txt",
        "name": "recording-3",
        "speed": 0.0,
    }
    assert parse_source_spec("live") == {"kind": "live", "name": "live"}
    assert parse_source_spec("live:http://127.0.0.1:8080/signalrcore") == {
        "kind": "live",
        "name": "live",
        "url": "http://127.0.0.1:8080/signalrcore",
    }
    for bad in ("telnet:x", "simulator", "recording:"):
        with pytest.raises(UserError, match="bad --source"):
            parse_source_spec(bad)


def test_command_line_sources_are_added(tmp_path: Path) -> None:
    config = load_config(None, environ={}, sources=("simulator:spa:3@10",))
    (source,) = config.sources
    assert (source.kind, source.track, source.seed, source.speed) == ("simulator", "spa", 3, 10.0)


def test_the_simulators_lap_limit_is_the_configurations() -> None:
    # A race the simulator refuses is refused by the configuration, with the key named,
    # instead of failing the source at every restart.
    from f1daemon.config import SourceSettings
    from f1daemon.sources.simulator import MAX_LAPS

    limit = next(m.le for m in SourceSettings.model_fields["laps"].metadata if hasattr(m, "le"))
    assert limit == MAX_LAPS


def test_the_socket_is_where_ctl_looks_from_any_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert ControlSettings().socket == Path("/run/user/1000/f1daemon.sock")
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/f1daemon")  # systemd's, for the service
    assert ControlSettings().socket == Path("/run/f1daemon/f1daemon.sock")
    monkeypatch.delenv("RUNTIME_DIRECTORY")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert ControlSettings().socket == Path("f1daemon.sock")
