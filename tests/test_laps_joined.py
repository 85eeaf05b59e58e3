"""Laps of a session joined mid-way: the 2023 Monaco FP2 live capture.

A live connection starts with a snapshot of where the session stands. Its
`LastLapTime` is the lap the count says is done, and so are all its sectors while the
last one is still shown (the feed clears them as the next lap's first comes). Before
pipeline 4.2.1 the snapshot's lap time went to the lap in progress, and every later
lap time was one lap late until the car's next stay in the pits: 54 of the capture's
72 laps had sectors that did not add up to their time.

The reference is the feed's own word, read here from the capture without our code:
the `LastLapTime` a car's messages carry when its `NumberOfLaps` moves to N is lap N's
time, and the sectors of a timed lap add up to it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest

from f1daemon.cli import main
from f1daemon.feed.timing import parse_time_ms

CAPTURE = Path("f1dash-signalr-2023_Monaco") / "fp2.txt"
# Longer than a pit stop takes: a "lap" across a stay in the garage.
GARAGE_MS = 120_000


def feed_crossings(path: Path) -> dict[tuple[int, int], int]:
    """(car, lap) -> LastLapTime of every line crossing the capture's messages report:
    the one sent with the count's move to the lap, or since the car's crossing before
    (through the pit lane it comes half a second before the count)."""
    crossings: dict[tuple[int, int], int] = {}
    sent: dict[int, int] = {}  # car -> a LastLapTime sent since its last crossing
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("{"):
            continue
        try:
            frame = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        for message in frame.get("M") or []:
            if message.get("M") != "feed" or message["A"][0] != "TimingData":
                continue
            for car, data in message["A"][1].get("Lines", {}).items():
                last = data.get("LastLapTime", {})
                value = last.get("Value") if isinstance(last, dict) else None
                time = parse_time_ms(value) if value else None
                if time is not None:
                    sent[int(car)] = time
                if "NumberOfLaps" in data and int(car) in sent:
                    crossings[(int(car), data["NumberOfLaps"])] = sent.pop(int(car))
    return crossings


@pytest.fixture(scope="module")
def laps(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    store = f"sqlite:///{tmp_path_factory.mktemp('joined') / 'events.db'}"
    assert main(["ingest", str(testdata / CAPTURE), "--store", store]) == 0
    out = tmp_path_factory.mktemp("joined-out") / "laps.csv"
    assert main(["export", "laps", "--store", store, "--format", "csv", "-o", str(out)]) == 0
    return list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))


def test_every_lap_time_is_the_one_the_feed_gave_at_that_crossing(
    laps: list[dict[str, str]], testdata: Path
) -> None:
    crossings = feed_crossings(testdata / CAPTURE)
    assert len(crossings) > 50
    ours = {(int(r["driver"]), int(r["lap"])): r for r in laps}
    untimed = {key for key, row in ours.items() if row["line_to_line_ms"]}
    # Across a stay in the garage, the time since the car last crossed the line: car 27
    # left the garage it was in when we joined (below). Slow laps are laps (44's 2:09).
    assert untimed == {(27, 16)}
    for (car, lap), value in crossings.items():
        row = ours[(car, lap)]
        if (car, lap) in untimed:
            assert (row["lap_time_ms"], row["line_to_line_ms"]) == ("", str(value))
            assert value > GARAGE_MS
        else:
            assert row["lap_time_ms"] == str(value), (car, lap)
    # And no lap has a time the feed did not give at its own crossing.
    timed = {key for key, row in ours.items() if row["lap_time_ms"]}
    assert timed <= set(crossings)


def test_the_sectors_of_every_timed_lap_add_up_to_its_time(laps: list[dict[str, str]]) -> None:
    complete = [r for r in laps if r["lap_time_ms"] and all(r[f"sector{i}_ms"] for i in (1, 2, 3))]
    assert len(complete) > 50
    for row in complete:
        sectors = sum(int(row[f"sector{i}_ms"]) for i in (1, 2, 3))
        assert abs(sectors - int(row["lap_time_ms"])) <= 100, (row["driver"], row["lap"])
        assert "sectors_do_not_sum_to_lap_time" not in row["flags"]


def test_a_stay_in_the_garage_that_began_before_we_joined_untimes_its_lap(
    laps: list[dict[str, str]],
) -> None:
    # Car 27 was in the garage at the snapshot; its lap out of it came with LastLapTime
    # 12:24.945, the time since it last crossed the line.
    (lap,) = [r for r in laps if r["driver"] == "27" and r["lap"] == "16"]
    assert lap["lap_time_ms"] == ""
    assert lap["line_to_line_ms"] == "744945"
    # Its next lap is the out-lap, timed.
    (out,) = [r for r in laps if r["driver"] == "27" and r["lap"] == "17"]
    assert (out["pit_out"], out["lap_time_ms"]) == ("true", "91805")
