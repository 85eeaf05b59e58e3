"""Local HTTP servers for the HTTP sources' tests: Jolpica, Open-Meteo, OpenWeatherMap.

Real HTTP/1.1 on 127.0.0.1 (an ephemeral port), served by trio in the test's own run
loop, so a `MockClock` drives the servers' delays too and request times are measured on
the same clock as the client's rate limiter. One connection per request
(`Connection: close`).

Faults: `server.inject(fault, None, fault, …)` queues what the next requests get, one
entry per request (`None`: a normal answer): an HTTP status (with `Retry-After`), a slow
answer, a body cut short of its `Content-Length`, a garbage 200 body, or a 200 whose JSON
is cut in half. `server.requests` records every request with the time it arrived.

Jolpica (`JolpicaData`): serves `../shared/f1data/jolpica-ergast` in the API's URL layout.
A file `<path>.json` is the response to `/ergast/f1/<path>.json`; `<path>.json__<query>` is
the response to that exact query string (e.g. `seasons.json__limit=3`). Those recorded
responses are served byte for byte when the exact URL is asked for. Any other `limit` /
`offset` is cut from the whole resource as the real API cuts it: `limit` defaults to 30
and is capped at 100, `total` counts the innermost rows (result lines, lap timings, pit
stops) and a page may end in the middle of a race or a lap. The whole resource is a
recorded response that holds all its rows, or — for a season's results, qualifying or
sprint, and a race's laps — the recorded per-race (per-lap) responses put together: "the
season as far as it is recorded". Pit stops are not in the recordings: pass them as
`extra` resources.

Open-Meteo and OpenWeatherMap: answers in each API's JSON shape, generated from the
request's parameters (`open_meteo_value`, `owm_entry` give the values a test expects).
"""

from __future__ import annotations

import copy
import json
import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import trio

JSON = "application/json"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def json_response(status: int, data: object) -> Response:
    return Response(status, json.dumps(data).encode())


@dataclass(frozen=True)
class Fault:
    """What one request gets instead of its normal answer."""

    kind: Literal["status", "slow", "truncate", "garbage", "cut_json"]
    status: int = 503
    retry_after: str | None = None
    delay: float = 60.0

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls("status", status=status)

    @classmethod
    def too_many(cls, retry_after: str | None = "2") -> Fault:
        return cls("status", status=429, retry_after=retry_after)

    @classmethod
    def slow(cls, delay: float = 60.0) -> Fault:
        return cls("slow", delay=delay)

    @classmethod
    def truncated(cls) -> Fault:
        """Headers promise the whole body; half of it comes, then the connection closes."""
        return cls("truncate")

    @classmethod
    def garbage(cls) -> Fault:
        """A 200 whose body is not JSON (a proxy's error page)."""
        return cls("garbage")

    @classmethod
    def cut_json(cls) -> Fault:
        """A well-framed 200 whose JSON body stops half-way."""
        return cls("cut_json")


@dataclass(frozen=True)
class Seen:
    """A request as the server saw it."""

    at: float
    """trio.current_time() when the request arrived."""
    path: str
    query: dict[str, str]
    raw_query: str
    fault: Fault | None
    status: int


Handler = Callable[[str, dict[str, str], str], Response]

GARBAGE = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass
class TestServer:
    handler: Handler
    port: int = 0
    faults: deque[Fault | None] = field(default_factory=deque)
    requests: list[Seen] = field(default_factory=list)

    __test__ = False  # not a pytest test class

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, *faults: Fault | None) -> None:
        """The next requests get these, in order (None: a normal answer)."""
        self.faults.extend(faults)

    def served(self, status: int = 200) -> list[Seen]:
        """The requests answered normally with `status`."""
        return [r for r in self.requests if r.fault is None and r.status == status]

    async def _read_head(self, stream: trio.SocketStream) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return None
            data += chunk
            if len(data) > 65536:
                return None
        return data

    async def _connection(self, stream: trio.SocketStream) -> None:
        try:
            async with stream:
                head = await self._read_head(stream)
                if head is None:
                    return
                await self._answer(stream, head)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client gave up (timed out) first

    async def _answer(self, stream: trio.SocketStream, head: bytes) -> None:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        _method, target, _version = request_line.split(" ", 2)
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        arrived = trio.current_time()
        fault = self.faults.popleft() if self.faults else None
        response = self.handler(parts.path, query, parts.query)
        body = response.body
        status = response.status
        headers = list(response.headers)
        content_type = response.content_type
        declared = len(body)
        if fault is not None:
            match fault.kind:
                case "status":
                    status = fault.status
                    body = json.dumps({"detail": f"injected {fault.status}"}).encode()
                    declared = len(body)
                    if fault.retry_after is not None:
                        headers.append(("Retry-After", fault.retry_after))
                case "slow":
                    pass  # answered late, below
                case "truncate":
                    body = body[: len(body) // 2]
                case "garbage":
                    body, content_type, declared = GARBAGE, "text/html", len(GARBAGE)
                case "cut_json":
                    body = body[: len(body) // 2]
                    declared = len(body)
        self.requests.append(Seen(arrived, parts.path, query, parts.query, fault, status))
        if fault is not None and fault.kind == "slow":
            await trio.sleep(fault.delay)
        lines = [
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}",
            f"Content-Type: {content_type}",
            f"Content-Length: {declared}",
            "Connection: close",
            *(f"{k}: {v}" for k, v in headers),
        ]
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[TestServer]:
    """A server running `handler` on 127.0.0.1 for the duration of the block."""
    server = TestServer(handler)
    async with trio.open_nursery() as nursery:
        listeners: list[trio.SocketListener] = await nursery.start(
            partial(trio.serve_tcp, server._connection, 0, host="127.0.0.1")
        )
        server.port = listeners[0].socket.getsockname()[1]
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


# --- Jolpica -----------------------------------------------------------------------

ROW_KEYS = ("Results", "QualifyingResults", "SprintResults", "Laps", "PitStops")
JOLPICA_URL = "https://api.jolpi.ca/ergast/f1/"
PREFIX = "/ergast/f1/"


def _row_key(race: dict[str, Any]) -> str | None:
    return next((k for k in ROW_KEYS if k in race), None)


def _flat_rows(races: list[dict[str, Any]]) -> list[tuple[int, int | None, Any]]:
    """(race index, lap index or None, row) for each innermost row."""
    rows: list[tuple[int, int | None, Any]] = []
    for ri, race in enumerate(races):
        key = _row_key(race)
        if key == "Laps":
            for li, lap in enumerate(race["Laps"]):
                rows.extend((ri, li, t) for t in lap["Timings"])
        elif key is not None:
            rows.extend((ri, None, r) for r in race[key])
    return rows


def _table(mr: dict[str, Any]) -> tuple[str, str]:
    table = next(k for k, v in mr.items() if k.endswith("Table") and isinstance(v, dict))
    items = next(k for k, v in mr[table].items() if isinstance(v, list))
    return table, items


def count_rows(mr: dict[str, Any]) -> int:
    """What `MRData.total` counts in a response."""
    table, items = _table(mr)
    listed = mr[table][items]
    if items == "Races" and any(_row_key(r) for r in listed):
        return len(_flat_rows(listed))
    return len(listed)


def slice_page(mr: dict[str, Any], offset: int, limit: int) -> dict[str, Any]:
    """The page at `offset`/`limit` of a whole resource, as the API cuts it."""
    out = copy.deepcopy(mr)
    table, items = _table(out)
    listed = out[table][items]
    if items == "Races" and any(_row_key(r) for r in listed):
        flat = _flat_rows(listed)
        total = len(flat)
        races: list[dict[str, Any]] = []
        last: int | None = None
        for ri, li, row in flat[offset : offset + limit]:
            race = listed[ri]
            key = _row_key(race)
            assert key is not None
            if last != ri:
                races.append({**{k: v for k, v in race.items() if k != key}, key: []})
                last = ri
            if li is None:
                races[-1][key].append(row)
            else:
                laps = races[-1]["Laps"]
                number = race["Laps"][li]["number"]
                if not laps or laps[-1]["number"] != number:
                    laps.append({"number": number, "Timings": []})
                laps[-1]["Timings"].append(row)
        out[table][items] = races
    else:
        total = len(listed)
        out[table][items] = listed[offset : offset + limit]
    out["limit"], out["offset"], out["total"] = str(limit), str(offset), str(total)
    return out


class JolpicaData:
    """The handler for Jolpica requests, from the recordings (and `extra` resources)."""

    def __init__(self, root: Path, extra: dict[str, dict[str, Any]] | None = None) -> None:
        self.root = root
        self.extra = extra or {}

    def __call__(self, path: str, query: dict[str, str], raw_query: str) -> Response:
        if not path.startswith(PREFIX) or not path.endswith(".json"):
            return json_response(404, {"detail": "Not found."})
        rel = path[len(PREFIX) : -len(".json")].strip("/")
        recorded = self.root / (f"{rel}.json__{raw_query}" if raw_query else f"{rel}.json")
        if ".." not in rel and recorded.is_file():
            return Response(200, recorded.read_bytes())
        try:
            limit = min(int(query.get("limit", "30")), 100)
            offset = int(query.get("offset", "0"))
        except ValueError:
            return json_response(400, {"detail": "limit and offset must be integers"})
        if limit < 0 or offset < 0:
            return json_response(400, {"detail": "limit and offset must be >= 0"})
        whole = self.whole(rel)
        if whole is None:
            return json_response(404, {"detail": "Not found."})
        page = slice_page(whole, offset, limit)
        return Response(200, json.dumps({"MRData": page}, indent=1).encode())

    def _load(self, path: Path) -> dict[str, Any]:
        mr: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["MRData"]
        return mr

    def _complete(self, path: Path) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        mr = self._load(path)
        if mr["offset"] == "0" and count_rows(mr) == int(mr["total"]):
            return mr
        return None

    def whole(self, rel: str) -> dict[str, Any] | None:
        """The whole resource (every row), or None if the recordings do not have it."""
        if rel in self.extra:
            return self.extra[rel]
        if ".." in rel:
            return None
        folder = self.root / rel
        for candidate in sorted(folder.parent.glob(f"{folder.name}.json*")):
            mr = self._complete(candidate)
            if mr is not None:
                return mr
        parts = rel.split("/")
        if (
            len(parts) == 2
            and parts[0].isdigit()
            and parts[1] in ("results", "qualifying", "sprint")
        ):
            season, kind = parts
            rounds = sorted(
                (int(p.name), p) for p in (self.root / season).glob("*") if p.name.isdigit()
            )
            pieces = [m for _, p in rounds if (m := self._complete(p / f"{kind}.json"))]
            return self._merge(pieces, f"{JOLPICA_URL}{rel}.json", {"season": season})
        if len(parts) == 3 and parts[2] == "laps":
            season, rnd, _ = parts
            laps = sorted(
                (int(p.stem), p) for p in (self.root / season / rnd / "laps").glob("*.json")
            )
            pieces = [m for _, p in laps if (m := self._complete(p))]
            return self._merge(pieces, f"{JOLPICA_URL}{rel}.json", {"season": season, "round": rnd})
        return None

    def _merge(
        self, pieces: list[dict[str, Any]], url: str, table: dict[str, str]
    ) -> dict[str, Any] | None:
        if not pieces:
            return None
        races: list[dict[str, Any]] = []
        for mr in pieces:
            for race in mr["RaceTable"]["Races"]:
                if races and (races[-1]["season"], races[-1]["round"]) == (
                    race["season"],
                    race["round"],
                ):  # the same race, another lap
                    races[-1]["Laps"].extend(race["Laps"])
                else:
                    races.append(copy.deepcopy(race))
        merged = {**pieces[0], "url": url, "RaceTable": {**table, "Races": races}}
        merged["total"] = str(count_rows(merged))
        return merged


# --- Open-Meteo --------------------------------------------------------------------

OPEN_METEO_START = datetime(2025, 7, 4, tzinfo=UTC)
"""The first hour the Open-Meteo server forecasts (real Open-Meteo: today 00:00)."""

OPEN_METEO_UNITS = {
    "temperature_2m": "°C",
    "relative_humidity_2m": "%",
    "precipitation_probability": "%",
    "precipitation": "mm",
    "wind_speed_10m": "m/s",
    "wind_direction_10m": "°",
    "surface_pressure": "hPa",
}
WIND_UNITS = {
    "ms": ("m/s", 1.0),
    "kmh": ("km/h", 3.6),
    "mph": ("mph", 1 / 0.44704),
    "kn": ("kn", 1 / 0.514444),
}


def open_meteo_value(  # noqa: PLR0911 - one return per variable
    var: str, lat: float, lon: float, hour: int, hours: int
) -> float | None:
    """The value the server forecasts (SI units) for hour `hour` of `hours`."""
    day = math.sin(2 * math.pi * (hour - 9) / 24)
    match var:
        case "temperature_2m":
            return round(18 + (abs(lat) % 10) * 0.3 + 6 * day, 1)
        case "relative_humidity_2m":
            return float(round(65 - 20 * day))
        case "precipitation_probability":
            # Real Open-Meteo has gaps (null) in the far range.
            return None if hour >= hours - 3 else float((hour * 7 + int(lon)) % 101)
        case "precipitation":
            return round((hour % 10) / 10, 1) if hour % 5 == 0 else 0.0
        case "wind_speed_10m":
            return round(3 + (hour % 7) * 0.5, 1)
        case "wind_direction_10m":
            return float((hour * 37) % 360)
        case "surface_pressure":
            return round(1000 + (hour % 13) * 0.7, 1)
    raise ValueError(var)


def open_meteo(path: str, query: dict[str, str], raw_query: str) -> Response:
    """`/v1/forecast` as Open-Meteo answers it (hourly variables only)."""
    if path != "/v1/forecast":
        return json_response(404, {"error": True, "reason": "Not Found"})
    try:
        lat, lon = float(query["latitude"]), float(query["longitude"])
    except (KeyError, ValueError):
        return json_response(
            400, {"error": True, "reason": "Parameter 'latitude' and 'longitude' must be set"}
        )
    variables = [v for v in query.get("hourly", "").split(",") if v]
    for var in variables:
        if var not in OPEN_METEO_UNITS:
            return json_response(
                400,
                {
                    "error": True,
                    "reason": f"Cannot initialize WeatherVariable from invalid String value "
                    f"{var} for key hourly",
                },
            )
    days = int(query.get("forecast_days", "7"))
    unit, factor = WIND_UNITS.get(query.get("wind_speed_unit", "kmh"), ("km/h", 3.6))
    hours = days * 24
    times = [
        (OPEN_METEO_START + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M") for h in range(hours)
    ]
    hourly: dict[str, list[Any]] = {"time": times}
    units: dict[str, str] = {"time": "iso8601"}
    for var in variables:
        values = [open_meteo_value(var, lat, lon, h, hours) for h in range(hours)]
        if var == "wind_speed_10m":
            values = [None if v is None else round(v * factor, 1) for v in values]
            units[var] = unit
        else:
            units[var] = OPEN_METEO_UNITS[var]
        hourly[var] = values
    body = {
        "latitude": round(round(lat / 0.025) * 0.025, 6),
        "longitude": round(round(lon / 0.025) * 0.025, 6),
        "generationtime_ms": 0.0629425048828125,
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "timezone_abbreviation": "GMT",
        "elevation": 153.0,
        "hourly_units": units,
        "hourly": hourly,
    }
    return json_response(200, body)


# --- OpenWeatherMap ----------------------------------------------------------------

OWM_START = int(datetime(2025, 7, 4, 12, tzinfo=UTC).timestamp())


def owm_entry(i: int) -> dict[str, Any]:
    """Entry `i` (3 h apart) of the server's forecast list, metric units."""
    dt = OWM_START + i * 3 * 3600
    rain = round((i % 4) * 0.37, 2)
    entry: dict[str, Any] = {
        "dt": dt,
        "main": {
            "temp": round(17.5 + 5 * math.sin(i / 8 * 2 * math.pi), 2),
            "feels_like": 17.0,
            "temp_min": 16.1,
            "temp_max": 18.9,
            "pressure": 1015 - i % 5,
            "sea_level": 1015 - i % 5,
            "grnd_level": 1003 - i % 5,
            "humidity": 60 + i % 30,
            "temp_kf": 0.52,
        },
        "weather": [{"id": 500, "main": "Rain", "description": "light rain", "icon": "10d"}],
        "clouds": {"all": 75},
        "wind": {"speed": round(2.1 + (i % 6) * 0.8, 2), "deg": (i * 45) % 360, "gust": 6.2},
        "visibility": 10000,
        "pop": round((i % 11) / 10, 2),
        "sys": {"pod": "d" if 6 <= (i * 3 + 12) % 24 < 20 else "n"},
        "dt_txt": datetime.fromtimestamp(dt, UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }
    if rain:
        entry["rain"] = {"3h": rain}
    return entry


def openweathermap(api_key: str) -> Handler:
    """`/data/2.5/forecast` as OpenWeatherMap answers it, accepting only `api_key`."""

    def handle(path: str, query: dict[str, str], raw_query: str) -> Response:
        if path != "/data/2.5/forecast":
            return json_response(404, {"cod": "404", "message": "Internal error"})
        if query.get("appid") != api_key:
            return json_response(
                401,
                {
                    "cod": 401,
                    "message": "Invalid API key. Please see "
                    "https://openweathermap.org/faq#error401 for more info.",
                },
            )
        try:
            lat, lon = float(query["lat"]), float(query["lon"])
        except (KeyError, ValueError):
            return json_response(400, {"cod": "400", "message": "Nothing to geocode"})
        entries = [owm_entry(i) for i in range(40)]
        if query.get("units") != "metric":  # standard units: Kelvin
            for e in entries:
                e["main"]["temp"] = round(e["main"]["temp"] + 273.15, 2)
        body = {
            "cod": "200",
            "message": 0,
            "cnt": 40,
            "list": entries,
            "city": {
                "id": 2647310,
                "name": "Silverstone",
                "coord": {"lat": round(lat, 4), "lon": round(lon, 4)},
                "country": "GB",
                "population": 2000,
                "timezone": 3600,
                "sunrise": 1751600000,
                "sunset": 1751660000,
            },
        }
        return json_response(200, body)

    return handle
