"""The daemon's configuration: one TOML file plus `F1DAEMON_*` environment overrides.

Every setting has a default, so an empty file (or none) is a working configuration:
the embedded store under the state directory, the control socket in the runtime
directory, metrics on 127.0.0.1:9464 and no sources. Environment variables override
single settings: ``F1DAEMON_{SECTION}_{SETTING}`` (``F1DAEMON_METRICS_PORT=9100``,
``F1DAEMON_CONTROL_SOCKET=/run/x.sock``), and ``F1DAEMON_STORE`` the store URL.
Sources are listed in the file (``[[sources]]``) or given on the command line.

Validation is pydantic's, reported as one readable line per problem.
"""

from __future__ import annotations

import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from f1daemon.errors import UserError
from f1daemon.feed.forecast import CIRCUITS as FORECAST_CIRCUITS
from f1daemon.feed.messages import FEED_TOPICS
from f1daemon.sources.recording import is_topic_name
from f1daemon.store.url import DEFAULT_STORE_URL, STORE_ENV_VAR, parse_store_url

ENV_PREFIX = "F1DAEMON_"
SourceKind = Literal["recording", "simulator", "live", "forecast", "results"]
SOURCE_KINDS = ("recording", "simulator")  # those a --source spec names with a path or track
# The schemes each kind's `url` may have: the live hub is reached over HTTP(S) for
# negotiate and then a websocket, so ws(s) names it as well; the polled APIs are HTTP.
URL_SCHEMES: Mapping[str, tuple[str, ...]] = {
    "live": ("https", "http", "wss", "ws"),
    "forecast": ("https", "http"),
    "results": ("https", "http"),
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DaemonSettings(_Section):
    """[daemon]"""

    store: str = Field(default="", description="Event log URL (default: $F1DAEMON_STORE).")
    state_dir: Path = Field(
        default=Path(os.environ.get("STATE_DIRECTORY", "f1daemon-data")),
        description="Where the embedded store and simulator output live ($STATE_DIRECTORY).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_deadline_s: float = Field(default=20.0, gt=0, description="Drain time on SIGTERM.")

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        if value:
            parse_store_url(value)  # raises UserError with the reason
        return value


def default_socket() -> Path:
    """Where the control socket is when the configuration does not say: systemd's
    runtime directory for the service, else the user's ($XDG_RUNTIME_DIR), so that
    `ctl` finds the daemon from any folder; the working folder only without either."""
    runtime = os.environ.get("RUNTIME_DIRECTORY") or os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime or ".") / "f1daemon.sock"


class ControlSettings(_Section):
    """[control]"""

    socket: Path = Field(
        default_factory=default_socket,
        description="The control socket ($RUNTIME_DIRECTORY/f1daemon.sock under systemd, "
        "else $XDG_RUNTIME_DIR/f1daemon.sock).",
    )
    mode: int = Field(default=0o660, ge=0, le=0o777, description="The socket's file mode.")
    max_line_bytes: int = Field(default=64 * 1024, ge=64, description="Longest request line.")
    client_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="A client silent (or not taking its reply) this long is disconnected.",
    )
    request_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A request line must be complete this long after its first byte, "
        "however slowly it trickles in.",
    )
    max_clients: int = Field(
        default=16,
        ge=1,
        description="Connections served at once; root and the daemon's own user have "
        "one more, kept for them.",
    )
    allowed_uids: tuple[int, ...] = Field(
        default=(), description="Peers allowed besides root and the daemon's own user."
    )
    allowed_gids: tuple[int, ...] = Field(default=(), description="Peer groups allowed.")


class MetricsSettings(_Section):
    """[metrics]"""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535, description="0 picks a free port.")


class HTTPSettings(_Section):
    """[http]"""

    enabled: bool = Field(default=False, description="Serve the HTTP API (OpenF1's).")
    host: str = Field(default="127.0.0.1", description="Beyond localhost, a token is needed.")
    port: int = Field(default=8000, ge=0, le=65535, description="0 picks a free port.")
    token_file: str = Field(
        default="", description="The bearer token's file (empty: $F1DAEMON_HTTP_TOKEN)."
    )
    max_rows: int = Field(default=100_000, ge=1, description="Rows a response holds at most.")
    request_timeout_s: float = Field(default=30.0, gt=0, description="Per request.")
    max_concurrent: int = Field(default=16, ge=1, description="Requests at once; more: 503.")


class WriterSettings(_Section):
    """[writer]"""

    mailbox_size: int = Field(default=256, ge=1, description="Append requests waiting at most.")
    max_batch: int = Field(default=5_000, ge=1, description="Facts per transaction at most.")


class SupervisionSettings(_Section):
    """[supervision]"""

    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_cap_s: float = Field(default=60.0, gt=0)
    backoff_jitter: float = Field(default=0.1, ge=0, le=1)
    healthy_after_s: float = Field(default=30.0, ge=0)
    breaker_failures: int = Field(default=3, ge=1, description="Failures that open a breaker.")
    breaker_reset_s: float = Field(default=60.0, ge=0, description="Open → half-open after.")
    stall_timeout_s: float = Field(
        default=120.0, gt=0, description="A source silent this long is restarted (watchdog)."
    )


class SourceSettings(_Section):
    """[[sources]]: one source actor."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: SourceKind
    path: Path | None = Field(default=None, description="recording: a recording or folder.")
    url: str | None = Field(
        default=None,
        description="live: the SignalR Core hub; forecast: Open-Meteo's API; results: "
        "Jolpica's (default: the public service of each).",
    )
    topics: tuple[str, ...] = Field(
        default=FEED_TOPICS, min_length=1, description="live: the topics subscribed."
    )
    ping_interval_s: float = Field(default=15.0, gt=0, description="live: send a ping this often.")
    watchdog_s: float = Field(
        default=45.0, gt=0, description="live: reconnect after this long without a frame."
    )
    reconnect_initial_s: float = Field(
        default=1.0, gt=0, description="live: first wait before reconnecting (then doubled)."
    )
    reconnect_cap_s: float = Field(
        default=60.0, gt=0, description="live: longest wait between connection attempts."
    )
    token_file: Path | None = Field(
        default=None, description="live: a file holding the F1 TV bearer token (CarData.z)."
    )
    token_env: str | None = Field(
        default=None, description="live: an environment variable holding that token."
    )
    interval_s: float = Field(
        default=900.0, gt=0, description="forecast, results: fetch again after this long."
    )
    attempts: int = Field(
        default=4, ge=1, le=20, description="forecast, results: tries of each request."
    )
    circuit: str | None = Field(default=None, description="forecast: the Ergast circuit id.")
    openweathermap_key_env: str | None = Field(
        default=None,
        description="forecast: an environment variable holding an OpenWeatherMap API key "
        "(also ask OpenWeatherMap, besides Open-Meteo).",
    )
    openweathermap_url: str | None = Field(
        default=None, description="forecast: OpenWeatherMap's API (default: the public one)."
    )
    season: int | None = Field(default=None, ge=1950, description="results: the season.")
    round: int | None = Field(default=None, ge=1, description="results: one race of it.")
    resources: tuple[Literal["results", "qualifying", "sprint", "laps", "pitstops"], ...] = Field(
        default=("results", "qualifying", "sprint"),
        min_length=1,
        description="results: what to fetch (laps and pitstops need a round).",
    )
    track: str = Field(default="monza", description="simulator: the circuit.")
    seed: int = Field(default=1, description="simulator: the seed.")
    # The simulator's own limit (`simulator.MAX_LAPS`): refused here, not at every restart.
    laps: int = Field(default=12, ge=2, le=80, description="simulator: race length.")
    cars: int = Field(default=20, ge=1, le=20, description="simulator: entrants.")
    telemetry_hz: float = Field(default=4.0, ge=1, le=60, description="simulator: CarData rate.")
    speed: float = Field(default=1.0, ge=0, description="x real time; 0 = as fast as possible.")
    session: str | None = Field(default=None, description="Session key (default: the data's).")
    shed_telemetry: bool = Field(
        default=False, description="Drop (and count) telemetry when the log falls behind."
    )

    @field_validator("path")
    @classmethod
    def _path_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.exists():
            raise ValueError(f"no such file or folder: {value}")
        return value

    @field_validator("topics")
    @classmethod
    def _topic_names(cls, topics: tuple[str, ...]) -> tuple[str, ...]:
        bad = [topic for topic in topics if not is_topic_name(topic)]
        if bad:
            raise ValueError(f"not topic names: {', '.join(map(repr, bad))}")
        return topics

    @model_validator(mode="after")
    def _recording_has_path(self) -> SourceSettings:
        if self.kind == "recording" and self.path is None:
            raise ValueError(f"source {self.name!r}: a recording needs a path")
        # Checked here, not when the source starts: a bad URL is refused at load (one
        # line, exit 2; `ctl reload` keeps the running configuration), never a failure
        # of the running daemon.
        for setting in ("url", "openweathermap_url"):
            value = getattr(self, setting)
            if value is not None:
                schemes = URL_SCHEMES.get(self.kind, ("https", "http"))
                problem = url_problem(value, schemes)
                if problem is not None:
                    raise ValueError(f"source {self.name!r}: {setting} {problem}")
        if self.token_file is not None and self.token_env is not None:
            raise ValueError(f"source {self.name!r}: give token_file or token_env, not both")
        if self.kind == "forecast" and self.circuit not in FORECAST_CIRCUITS:
            known = ", ".join(sorted(FORECAST_CIRCUITS))
            raise ValueError(
                f"source {self.name!r}: a forecast needs a known circuit "
                f"(got {self.circuit!r}; known: {known})"
            )
        if self.kind == "results" and self.season is None:
            raise ValueError(f"source {self.name!r}: results need a season")
        per_race = {"laps", "pitstops"} & set(self.resources)
        if self.kind == "results" and per_race and self.round is None:
            raise ValueError(f"source {self.name!r}: {' and '.join(sorted(per_race))} need a round")
        return self


class Config(_Section):
    """The whole configuration."""

    daemon: DaemonSettings = DaemonSettings()
    control: ControlSettings = ControlSettings()
    metrics: MetricsSettings = MetricsSettings()
    http: HTTPSettings = HTTPSettings()
    writer: WriterSettings = WriterSettings()
    supervision: SupervisionSettings = SupervisionSettings()
    sources: tuple[SourceSettings, ...] = ()

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: tuple[SourceSettings, ...]) -> tuple[SourceSettings, ...]:
        names = [s.name for s in sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique: {', '.join(duplicates)}")
        return sources

    @property
    def store_url(self) -> str:
        """The store to open: the configured URL, else the embedded one in the state dir."""
        if self.daemon.store:
            return self.daemon.store
        if self.daemon.state_dir == Path("f1daemon-data"):
            return DEFAULT_STORE_URL
        return f"sqlite:///{self.daemon.state_dir.absolute() / 'events.db'}"


def url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    """What is wrong with `url` as the address of a service (None: nothing)."""
    expected = " or ".join(f"{scheme}://" for scheme in schemes)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in 0-65535
    except ValueError as error:
        return f"{url!r} is not a URL ({error})"
    if parts.scheme.lower() not in schemes:
        got = f"{parts.scheme}://" if parts.scheme else "no scheme"
        return f"{url!r} must start with {expected} (got {got})"
    if not parts.hostname:
        return f"{url!r} names no host"
    if port == 0:
        return f"{url!r}: port 0 is no port to connect to"
    return None


def load_config(
    path: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    sources: tuple[str, ...] = (),
) -> Config:
    """Read the file (if any), apply the environment, add `--source` specs, validate."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise UserError(f"cannot read the configuration {path}: {error.strerror}") from error
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{path}: not valid TOML: {error}") from error
    _apply_environment(data, environ)
    if sources:
        listed = list(data.get("sources", []))
        listed.extend(parse_source_spec(spec, len(listed)) for spec in sources)
        data["sources"] = listed
    where = str(path) if path is not None else "configuration"
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise UserError(f"{where}: {_problems(error)}") from error
    except UserError as error:
        raise UserError(f"{where}: {error}") from error


def parse_source_spec(spec: str, index: int = 0) -> dict[str, Any]:
    """`recording:PATH[@SPEED]`, `simulator:TRACK[:SEED][@SPEED]` or `live[:URL]` as a
    [[sources]] table."""
    if spec == "live" or spec.startswith("live:"):
        url = spec.partition(":")[2]
        return {"kind": "live", "name": "live", **({"url": url} if url else {})}
    body, _, speed = spec.partition("@")
    kind, _, rest = body.partition(":")
    if kind not in SOURCE_KINDS or not rest:
        raise UserError(
            f"bad --source {spec!r}: expected recording:PATH or simulator:TRACK[:SEED], "
            "optionally followed by @SPEED, or live[:URL]"
        )
    table: dict[str, Any] = {"kind": kind}
    if kind == "recording":
        table["path"] = rest
        table["name"] = f"recording-{index + 1}"
    else:
        track, _, seed = rest.partition(":")
        table.update(track=track, name=f"simulator-{track}")
        if seed:
            table["seed"] = seed
    if speed:
        table["speed"] = 0.0 if speed == "max" else speed
    return table


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    if STORE_ENV_VAR in environ and not data.get("daemon", {}).get("store"):
        data.setdefault("daemon", {})["store"] = environ[STORE_ENV_VAR]
    for section, info in Config.model_fields.items():
        model = info.annotation
        if not (isinstance(model, type) and issubclass(model, _Section)):
            continue  # [[sources]] are configured in the file or with --source
        for setting, field in model.model_fields.items():
            name = f"{ENV_PREFIX}{section}_{setting}".upper()
            if name in environ:
                value: Any = environ[name]
                if typing.get_origin(field.annotation) is tuple:
                    value = value.replace(",", " ").split()
                elif setting == "mode":
                    value = _octal(name, value)
                data.setdefault(section, {})[setting] = value


def _octal(name: str, text: str) -> int:
    # A file mode is written in octal (0660); pydantic would read "0660" as 660.
    try:
        return int(text, 8)
    except ValueError:
        raise UserError(f"{name}: {text!r} is not an octal file mode such as 0660") from None


def _problems(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "configuration"
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "; ".join(lines)
