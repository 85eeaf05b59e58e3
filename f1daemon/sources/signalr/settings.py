"""How to reach the live feed: the client's settings and the hub's URLs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from f1daemon.actors.backoff import Backoff
from f1daemon.feed.messages import FEED_TOPICS
from f1daemon.sources.recording import is_topic_name

SOURCE = "live"
LIVE_URL = "https://livetiming.formula1.com/signalrcore"

# The topics subscribed by default: every topic the feed publishes in a session.
DEFAULT_TOPICS = FEED_TOPICS

_HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


@dataclass(frozen=True)
class SignalRSettings:
    """How to reach the live feed and how to keep the connection healthy."""

    url: str = LIVE_URL
    """The hub's base URL (``https://…/signalrcore``); ``ws(s)://`` is accepted too."""
    topics: tuple[str, ...] = DEFAULT_TOPICS
    source: str = SOURCE
    """`MessageReceived.source` of the facts."""
    ping_interval_s: float = 15.0
    """Send a ping this often (the server drops a client silent for about 30 s)."""
    watchdog_s: float = 45.0
    """Reconnect when no complete frame has arrived for this long."""
    connect_timeout_s: float = 30.0
    """Limit for each negotiate request and for opening the websocket."""
    backoff: Backoff = field(
        default_factory=lambda: Backoff(initial=1.0, factor=2.0, cap=60.0, jitter=0.5)
    )
    """Delay between connection attempts: reset after a connection that delivered a
    fact (a snapshot topic or a feed message) or lasted ``healthy_after``."""
    token_file: Path | None = None
    """A file holding the F1 TV bearer token (optional)."""
    token_env: str | None = None
    """The name of an environment variable holding the bearer token (optional)."""
    max_frame_chars: int = 64 * 1024 * 1024
    """A frame longer than this without a record separator is quarantined."""
    user_agent: str = "f1daemon"

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme
        if scheme not in _HTTP_SCHEMES:
            raise ValueError(f"url must be http(s) or ws(s), got {self.url!r}")
        if not self.topics:
            raise ValueError("topics must not be empty")
        bad = [topic for topic in self.topics if not is_topic_name(topic)]
        if bad:
            raise ValueError(f"not topic names: {bad}")
        for name in ("ping_interval_s", "watchdog_s", "connect_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")
        if self.max_frame_chars < 1:
            raise ValueError(f"max_frame_chars must be >= 1, got {self.max_frame_chars}")
        if self.token_file is not None and self.token_env is not None:
            raise ValueError("give token_file or token_env, not both")


def negotiate_url(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path.rstrip("/") + "/negotiate"
    return urlunsplit((_HTTP_SCHEMES[parts.scheme], parts.netloc, path, "", ""))


def websocket_url(url: str, connection_token: str) -> str:
    parts = urlsplit(url)
    query = "id=" + quote(connection_token, safe="")
    return urlunsplit((_WS_SCHEMES[parts.scheme], parts.netloc, parts.path, query, ""))
