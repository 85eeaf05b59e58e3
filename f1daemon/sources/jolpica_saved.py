"""A saved Jolpica response (one page as the API served it, kept in a file) as a fact.

`f1daemon ingest PAGE.json --session KEY` logs it as the results source would have
logged it (`f1daemon.sources.jolpica`): a `MessageReceived` of source `jolpica`, topic
`jolpica.<kind>`, stream the resource path its `MRData.url` names (e.g.
`2018/4/results`, `2018/4/laps/1`), sequence its page number (offset / limit + 1),
payload the file's text. Given the feed session's key, its rows are exported with that
session's keys (see `f1daemon.projections.reference`). Told by content: a JSON object
whose `MRData` holds a `RaceTable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from f1daemon.domain.events import MessageReceived
from f1daemon.feed.jolpica import JolpicaParseError, Kind, parse_page
from f1daemon.sources.jolpica import SOURCE

# Where in a page the rows of each kind are.
_ROWS = {
    Kind.RESULTS: "Results",
    Kind.QUALIFYING: "QualifyingResults",
    Kind.SPRINT: "SprintResults",
    Kind.LAPS: "Laps",
    Kind.PITSTOPS: "PitStops",
}


@dataclass(frozen=True)
class SavedPage:
    """One saved page: its kind, resource, race and place among the resource's pages."""

    kind: Kind
    resource: str
    season: int | None
    round: int | None
    page: int
    text: str

    def default_session(self) -> str:
        """The session the daemon's results source logs it under by default."""
        race = f"-{self.round:02d}" if self.round is not None else ""
        return f"Results/{self.season or ''}{race}"

    def fact(self, session: str) -> MessageReceived:
        """The page as the fact the results source would have logged."""
        return MessageReceived(
            session=session,
            source=SOURCE,
            stream=self.resource,
            topic=self.kind.topic,
            sequence=self.page,
            offset_ms=None,
            payload=self.text,
        )


def read_saved_page(data: bytes, name: str) -> SavedPage | None:
    """The page `data` holds; None when it is no Jolpica page (told by content)."""
    if b'"MRData"' not in data[:4096]:
        return None
    try:
        text = data.decode("utf-8-sig")
        body = orjson.loads(text)
    except (UnicodeDecodeError, orjson.JSONDecodeError):
        return None
    mr = body.get("MRData") if isinstance(body, dict) else None
    table = mr.get("RaceTable") if isinstance(mr, dict) else None
    if not isinstance(mr, dict) or not isinstance(table, dict):
        return None
    resource = _resource(mr.get("url"), name)
    kind = _kind(resource, table)
    if kind is None:
        return None
    try:
        page = parse_page(kind, text)
    except JolpicaParseError:
        return None  # not a page of a kind we read (a schedule, a driver list)
    races = table.get("Races")
    first = races[0] if isinstance(races, list) and races else {}
    return SavedPage(
        kind=kind,
        resource=resource,
        season=_int(first.get("season", table.get("season"))),
        round=_int(first.get("round", table.get("round"))),
        page=page.offset // page.limit + 1 if page.limit else 1,
        text=text,
    )


def _resource(url: object, name: str) -> str:
    """`https://api.jolpi.ca/ergast/f1/2018/4/results.json` → `2018/4/results`."""
    if isinstance(url, str) and "/f1/" in url:
        return urlsplit(url).path.split("/f1/", 1)[1].removesuffix(".json")
    return name.removesuffix(".json")


def _kind(resource: str, table: dict[str, object]) -> Kind | None:
    kinds = {kind.value: kind for kind in Kind}
    for part in resource.split("/"):
        if part in kinds:
            return kinds[part]
    races = table.get("Races")
    for race in races if isinstance(races, list) else []:
        for kind, key in _ROWS.items():
            if isinstance(race, dict) and race.get(key):
                return kind
    return None


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None
