"""The live-timing feed over SignalR Core: negotiate, websocket, subscribe, facts.

The protocol (see "Feed facts we rely on" in DESIGN.md), as this client speaks it:

1. ``OPTIONS {url}/negotiate`` — the load balancer sets a cookie, kept for the next
   two requests (without it the websocket may land on a server that does not know
   the connection token);
2. ``POST {url}/negotiate?negotiateVersion=1`` → ``{"connectionToken": …}``;
3. websocket ``{ws url}?id={connectionToken}``, sending the cookie;
4. handshake ``{"protocol":"json","version":1}`` → ``{}`` (or ``{"error": …}``);
5. ``{"type":1,"invocationId":"1","target":"Subscribe","arguments":[[topics…]]}`` →
   a ``type 3`` completion whose ``result`` maps each topic to its full snapshot;
6. then ``type 1`` invocations of ``feed`` with arguments ``[topic, data, utc]``;
   ``type 6`` pings both ways; ``type 7`` close (optional ``error``) ends it.

Every frame ends with the record separator ``\\x1e``; a websocket message may hold
several frames and a frame may be split across messages, so frames are cut out of a
running buffer (`FrameSplitter`).

The package is in layers, each importing only those above it in this list:

* `settings` — `SignalRSettings` and the hub's URLs; `errors` — what can go wrong;
* `auth` — the bearer token (`BearerToken`, `load_token`) and the server's refusals;
* `protocol` — **sans-IO**: `ClientProtocol` turns received websocket messages into
  exactly one `Outcome` per frame and writes the frames to send; it never raises on
  input (a frame that cannot be read is `Garbage` with the rule it broke);
* `transport` — **I/O**: a `Connector` (`websocket_connector`: `negotiate` with
  httpx, then a `WebSocket` on wsproto; tests plug in an in-memory one);
* `client` — **trio**: `LiveClient` (and `stream_live`, its one-call form) turns
  outcomes into facts, sends pings, runs the no-data watchdog and reconnects with
  the jittered exponential `Backoff` of `f1daemon.actors.backoff`.

Facts (handed to ``send`` one at a time, in the order received):

* ``source`` — `SignalRSettings.source` (``live``).
* ``stream`` — one per websocket connection, ``signalr:{opened, UTC}:{n}`` (n counts
  the connections of this client, from 1). The UTC stamp makes the name unique across
  daemon restarts: the log treats (session, source, stream, sequence) as the identity
  of a fact and skips one it has seen, so reusing ``signalr:1`` after a restart would
  silently drop the new connection's facts as duplicates.
* ``sequence`` — 1, 2, … within the stream: every frame that becomes a fact takes one
  (each topic of a snapshot takes its own; a quarantined frame takes one).
* ``offset_ms`` — milliseconds of *stream time*: the monotonic time since the client
  started, plus (when given) the wall-clock time from the session's ``origin`` to
  that start. It is **not** null and **not** per connection: the decoders order a
  session's facts by ``offset_ms`` (``None`` would be quarantined as
  ``decode.timestamp``; a per-connection offset would put a reconnect's snapshot
  before the previous connection's last messages). Frames of one websocket message
  share the offset and ``received_at`` of the message.
* ``received_at`` — wall-clock UTC at receipt; ``sent_at`` — the feed's own ``utc``
  argument (checked: ``framing.timestamp``); only ``data`` is the payload.
* ``payload`` — the data as compact JSON (for ``.z`` topics the JSON string of the
  base64 text), exactly as `f1daemon.sources.recording` writes it, so a live session
  and its recording give the same payloads.
* ``keyframe`` — true for each topic of the subscribe completion (a full snapshot). The
  client subscribes again after every reconnect, so each connection starts with a
  fresh snapshot.

Garbage is never dropped: each unreadable frame becomes a `RecordQuarantined` in the
connection's stream (the frame's text whole; a frame of a binary message that is not
UTF-8, ``framing.encoding``, with its exact bytes in ``payload_base64``); a frame left
incomplete when the connection ends is quarantined as ``framing.syntax``
``truncated: …``.

Reconnects: a connection ends on a close message, a lost socket, a refused handshake
or subscribe, or the watchdog (no complete frame for `SignalRSettings.watchdog_s`;
server pings count — they prove the connection alive between sessions, when the feed
is silent). The client then waits per its backoff and connects again; once the new
connection's handshake is done it hands ``send`` a `ConnectionGap` (when the data
stopped, when it can flow again, why), before the new snapshot. The backoff starts
again after a connection that delivered a fact. A refused bearer token (HTTP 401/403
on negotiate or the upgrade, or an error saying so in the handshake reply or a close
message) is not retried here: `SignalRAuthError` — a `PersistentFailure` — is raised
for the supervisor (which retries at its breaker's pace) and the operator.

A subscribe reply's topics are checked one by one: one that cannot be read is
quarantined alone. When the feed's `SessionInfo` names a new session, the client
subscribes again on the same connection for that session's snapshot (a reconnect
if its completion does not come within `SignalRSettings.connect_timeout_s`).

The bearer token: see `f1daemon.sources.signalr.auth`.
"""

from f1daemon.sources.signalr.auth import BearerToken, load_token
from f1daemon.sources.signalr.client import (
    ConnectionGap,
    LiveClient,
    LiveItem,
    OnLost,
    Send,
    UtcClock,
    stream_live,
)
from f1daemon.sources.signalr.errors import (
    SignalRAuthError,
    SignalRConnectionError,
    SignalRError,
    TokenError,
)
from f1daemon.sources.signalr.protocol import (
    RECORD_SEPARATOR,
    ClientProtocol,
    CloseReceived,
    Feed,
    FrameSplitter,
    Garbage,
    HandshakeDone,
    HandshakeFailed,
    Outcome,
    PingReceived,
    Snapshot,
    SubscribeFailed,
)
from f1daemon.sources.signalr.settings import (
    DEFAULT_TOPICS,
    LIVE_URL,
    SOURCE,
    SignalRSettings,
    negotiate_url,
    websocket_url,
)
from f1daemon.sources.signalr.transport import (
    Connector,
    MessageSocket,
    WebSocket,
    WebSocketClosed,
    negotiate,
    websocket_connector,
)

__all__ = [
    "DEFAULT_TOPICS",
    "LIVE_URL",
    "RECORD_SEPARATOR",
    "SOURCE",
    "BearerToken",
    "ClientProtocol",
    "CloseReceived",
    "ConnectionGap",
    "Connector",
    "Feed",
    "FrameSplitter",
    "Garbage",
    "HandshakeDone",
    "HandshakeFailed",
    "LiveClient",
    "LiveItem",
    "MessageSocket",
    "OnLost",
    "Outcome",
    "PingReceived",
    "Send",
    "SignalRAuthError",
    "SignalRConnectionError",
    "SignalRError",
    "SignalRSettings",
    "Snapshot",
    "SubscribeFailed",
    "TokenError",
    "UtcClock",
    "WebSocket",
    "WebSocketClosed",
    "load_token",
    "negotiate",
    "negotiate_url",
    "stream_live",
    "websocket_connector",
    "websocket_url",
]
