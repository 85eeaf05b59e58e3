"""The lap-fitting rules on hand-written feed messages, one rule a test."""

from __future__ import annotations

from typing import Any

import orjson

from f1daemon._native import TimingDigest
from f1daemon.domain.events import LapCompleted, PitStop, PositionChanged
from f1daemon.feed.laps import LATE_VALUE_WINDOW_MS, LapFitter
from f1daemon.feed.stints import StintTracker
from f1daemon.feed.timebase import TimeBase
from f1daemon.feed.timing import format_time_ms, parse_time_ms
from f1daemon.feed.track_status import TrackStatusTracker


def timing(driver: int, **values: Any) -> dict[str, Any]:
    return {"Lines": {str(driver): values}}


def sector(index: int, value: str) -> dict[str, Any]:
    return {"Sectors": {str(index): {"Value": value}}}


NO_TIME_BASE = TimeBase(t0=None, session_start_ms=None, samples=0)


def fitter() -> LapFitter:
    stints = StintTracker("s")
    return LapFitter("s", stints, TrackStatusTracker("s"), NO_TIME_BASE)


class Feed:
    """The lap fitter fed as the pipeline feeds it: each message through the native digest."""

    def __init__(self) -> None:
        self.fitter = fitter()
        self.stints = self.fitter.stints
        self.digest = TimingDigest()
        self.events: list[LapCompleted | PitStop | PositionChanged] = []
        self.send(0, timing(44, InPit=False, PitOut=False), keyframe=True)

    def send(self, t: int, message: dict[str, Any], *, keyframe: bool = False) -> None:
        digest = self.digest.feed(orjson.dumps(message))
        if digest is not None:
            self.events.extend(self.fitter.due(t))
            self.events.extend(self.fitter.on_message(digest, t, keyframe=keyframe))

    def app(self, t: int, message: dict[str, Any]) -> None:
        self.events.extend(self.fitter.due(t))
        self.stints.on_message(message, t, None)

    def end(self) -> list[LapCompleted]:
        self.events.extend(self.fitter.finish())
        return [e for e in self.events if isinstance(e, LapCompleted)]

    def stops(self) -> list[PitStop]:
        return [e for e in self.events if isinstance(e, PitStop)]


def test_values_in_the_same_message_as_the_count_belong_to_the_lap_it_completes() -> None:
    feed = Feed()
    feed.send(30_000, timing(44, **sector(0, "30.100")))
    feed.send(60_000, timing(44, **sector(1, "30.200")))
    feed.send(
        90_000, timing(44, NumberOfLaps=1, LastLapTime={"Value": "1:30.600"}, **sector(2, "30.300"))
    )
    (lap,) = feed.end()
    assert (lap.lap, lap.lap_time_ms, lap.sector1_ms, lap.sector2_ms, lap.sector3_ms) == (
        1,
        90_600,
        30_100,
        30_200,
        30_300,
    )
    assert lap.flags == ()


def test_late_values_belong_to_the_lap_just_completed() -> None:
    feed = Feed()
    feed.send(30_000, timing(44, **sector(0, "30.000")))
    feed.send(60_000, timing(44, **sector(1, "30.000")))
    feed.send(90_000, timing(44, NumberOfLaps=1))
    feed.send(91_500, timing(44, **sector(2, "30.000")))
    feed.send(92_000, timing(44, LastLapTime={"Value": "1:30.000"}))
    feed.send(120_000, timing(44, **sector(0, "29.000")))
    feed.send(180_000, timing(44, NumberOfLaps=2, LastLapTime={"Value": "1:29.000"}))
    first, second = feed.end()
    assert (first.lap, first.lap_time_ms, first.sector3_ms) == (1, 90_000, 30_000)
    assert (second.lap, second.lap_time_ms, second.sector1_ms, second.sector3_ms) == (
        2,
        89_000,
        29_000,
        None,
    )


def test_a_lap_time_just_before_the_count_moves_on_belongs_to_the_completing_lap() -> None:
    feed = Feed()
    feed.send(90_000, timing(44, NumberOfLaps=1, LastLapTime={"Value": "1:30.000"}))
    feed.send(179_100, timing(44, LastLapTime={"Value": "1:29.100"}))
    feed.send(180_000, timing(44, NumberOfLaps=2))
    laps = feed.end()
    assert [(lap.lap, lap.lap_time_ms) for lap in laps] == [(1, 90_000), (2, 89_100)]


def test_a_lap_without_lap_time_is_never_given_one() -> None:
    feed = Feed()
    feed.send(90_000, timing(44, NumberOfLaps=1, **sector(2, "30.000")))
    feed.send(90_000 + LATE_VALUE_WINDOW_MS + 1, timing(44, **sector(0, "28.000")))
    (lap,) = feed.end()
    assert lap.lap_time_ms is None
    assert lap.sector1_ms is None


def test_a_jump_in_the_count_reports_the_skipped_laps_untimed_and_flagged() -> None:
    feed = Feed()
    feed.send(90_000, timing(44, NumberOfLaps=1, LastLapTime={"Value": "1:30.000"}))
    feed.send(270_000, timing(44, NumberOfLaps=3, LastLapTime={"Value": "1:30.500"}))
    laps = feed.end()
    assert [(lap.lap, lap.lap_time_ms, lap.flags) for lap in laps] == [
        (1, 90_000, ()),
        (2, None, ("lap_not_reported",)),
        (3, 90_500, ()),
    ]


def test_sectors_that_do_not_sum_to_the_lap_time_are_flagged() -> None:
    feed = Feed()
    feed.send(30_000, timing(44, **sector(0, "30.000")))
    feed.send(60_000, timing(44, **sector(1, "30.000")))
    feed.send(
        90_000, timing(44, NumberOfLaps=1, LastLapTime={"Value": "1:31.000"}, **sector(2, "30.000"))
    )
    (lap,) = feed.end()
    assert lap.flags == ("sectors_do_not_sum_to_lap_time",)


def test_pit_in_and_out_mark_the_in_lap_and_the_out_lap_with_their_stints() -> None:
    feed = Feed()
    feed.app(
        1_000,
        {
            "Lines": {
                "44": {
                    "Stints": [{"Compound": "SOFT", "New": "true", "TotalLaps": 0, "StartLaps": 0}]
                }
            }
        },
    )
    feed.send(85_000, timing(44, InPit=True, NumberOfPitStops=1))
    feed.send(90_000, timing(44, NumberOfLaps=1, LastLapTime={"Value": "1:30.000"}))
    feed.send(110_000, timing(44, InPit=False, PitOut=True))
    feed.app(
        110_000,
        {"Lines": {"44": {"Stints": {"1": {"Compound": "HARD", "New": "true", "TotalLaps": 0}}}}},
    )
    feed.send(140_000, timing(44, PitOut=False))
    feed.send(200_000, timing(44, NumberOfLaps=2, LastLapTime={"Value": "1:50.000"}))
    feed.send(290_000, timing(44, NumberOfLaps=3, LastLapTime={"Value": "1:30.000"}))
    laps = feed.end()
    assert [(lap.lap, lap.pit_in, lap.pit_out, lap.stint, lap.compound) for lap in laps] == [
        (1, True, False, 1, "SOFT"),
        (2, False, True, 2, "HARD"),
        (3, False, False, 2, "HARD"),
    ]


def test_a_car_already_in_the_garage_at_the_start_has_no_in_lap() -> None:
    feed = Feed()
    feed.send(500, timing(16, InPit=True, PitOut=False))
    feed.send(600_000, timing(16, InPit=False))
    feed.send(700_000, timing(16, NumberOfLaps=1, LastLapTime={"Value": "1:40.000"}))
    (lap,) = [e for e in feed.fitter.finish() if isinstance(e, LapCompleted) and e.driver == 16]
    assert isinstance(lap, LapCompleted)
    assert (lap.pit_in, lap.pit_out) == (False, False)


def test_leaving_the_pits_as_the_count_moves_on_makes_the_new_lap_the_out_lap() -> None:
    feed = Feed()
    feed.send(80_000, timing(44, InPit=True))
    feed.send(90_000, timing(44, NumberOfLaps=1, LastLapTime={"Value": "1:30.000"}))
    feed.send(300_000, timing(44, InPit=False, PitOut=True, NumberOfLaps=2))
    feed.send(362_000, timing(44, NumberOfLaps=3, LastLapTime={"Value": "1:01.871"}))
    laps = feed.end()
    assert [(lap.lap, lap.pit_in, lap.pit_out) for lap in laps] == [
        (1, True, False),
        (2, False, False),
        (3, False, True),
    ]
    (stop,) = feed.stops()
    assert (stop.in_lap, stop.out_lap, stop.pit_lane_ms) == (1, 3, 220_000)


def test_a_faster_lap_the_feed_does_not_mark_as_personal_best_is_flagged() -> None:
    feed = Feed()
    feed.send(
        90_000,
        timing(44, NumberOfLaps=1, LastLapTime={"Value": "1:36.830", "PersonalFastest": True}),
    )
    feed.send(
        180_000,
        timing(44, NumberOfLaps=2, LastLapTime={"Value": "1:30.813", "PersonalFastest": False}),
    )
    feed.send(
        270_000,
        timing(44, NumberOfLaps=3, LastLapTime={"Value": "1:37.000", "PersonalFastest": False}),
    )
    assert [lap.flags for lap in feed.end()] == [
        (),
        ("faster_than_personal_best_but_not_marked_one",),
        (),
    ]


def test_speed_traps_positions_and_track_statuses_are_carried_on_the_lap() -> None:
    feed = Feed()
    feed.fitter.track.on_message({"Status": "1"}, 0, None, None)
    feed.send(20_000, timing(44, Speeds={"I1": {"Value": "301"}}, Position="3"))
    feed.fitter.track.on_message({"Status": "4", "Message": "SCDeployed"}, 50_000, None, 1)
    feed.send(85_000, timing(44, Speeds={"ST": {"Value": "330"}}))
    feed.send(
        90_000, timing(44, NumberOfLaps=1, GapToLeader="+1.234", Speeds={"FL": {"Value": "290"}})
    )
    # The ST trap can be passed early in a lap: within the late window it is still the
    # new lap's (FastF1 has it so), unlike the other traps.
    feed.send(91_000, timing(44, Speeds={"ST": {"Value": "310"}}))
    feed.send(180_000, timing(44, NumberOfLaps=2, LastLapTime={"Value": "1:30.000"}))
    lap, second = feed.end()
    assert (lap.speed_i1_kmh, lap.speed_fl_kmh, lap.speed_st_kmh) == (301, 290, 330)
    assert (lap.position, lap.gap_to_leader) == (3, "+1.234")
    assert lap.track_statuses == ("1", "4")
    assert second.speed_st_kmh == 310


def test_feed_times_parse_and_format() -> None:
    assert parse_time_ms("1:45.412") == 105_412
    assert parse_time_ms("42.025") == 42_025
    assert parse_time_ms("59") == 59_000
    assert parse_time_ms("1:02.3") == 62_300
    assert parse_time_ms(" 42.025\t") == 42_025
    # ASCII digits only, as the native digest reads them (no Arabic-Indic or full-width).
    for bad in ("", "-", "1:xx", None, 12, "LAP 1", "\u0661:02.3", "\uff14\uff12", "1234567", ".5"):
        assert parse_time_ms(bad) is None
    assert format_time_ms(105_412) == "1:45.412"
    assert format_time_ms(42_025) == "42.025"


def test_the_time_in_the_garage_before_the_first_pit_exit_is_not_a_lap() -> None:
    # Practice and qualifying: the feed's count moves to 1 as the car leaves the pits.
    # As FastF1 and OpenF1 count, lap 1 is the out-lap that begins there.
    feed = Feed()
    feed.send(500, timing(16, InPit=True, PitOut=False))
    feed.send(600_000, timing(16, InPit=False, PitOut=True, NumberOfLaps=1))
    feed.send(700_000, timing(16, NumberOfLaps=2, Sectors={"2": {"Value": "30.000"}}))
    feed.send(790_000, timing(16, NumberOfLaps=3, LastLapTime={"Value": "1:30.000"}))
    laps = [lap for lap in feed.end() if lap.driver == 16]
    assert [(lap.lap, lap.pit_out, lap.lap_time_ms) for lap in laps] == [
        (1, True, None),
        (2, False, 90_000),
    ]


def test_a_lap_time_that_spans_a_stay_in_the_garage_is_kept_as_line_to_line() -> None:
    feed = Feed()
    feed.send(90_000, timing(44, NumberOfLaps=1, LastLapTime={"Value": "1:30.000"}))
    feed.send(170_000, timing(44, InPit=True))
    feed.send(175_000, timing(44, NumberOfLaps=2, LastLapTime={"Value": "1:25.000"}))
    # Ten minutes in the garage; out again, and the next line crossing's time is the
    # time since the car last crossed the line: 11:30, not a lap.
    feed.send(775_000, timing(44, InPit=False, PitOut=True, NumberOfLaps=3))
    feed.send(865_000, timing(44, NumberOfLaps=4, LastLapTime={"Value": "11:30.000"}))
    laps = feed.end()
    last = laps[-1]
    assert (last.lap_time_ms, last.line_to_line_ms) == (None, 690_000)
    assert [lap.lap_time_ms for lap in laps[:2]] == [90_000, 85_000]
    # A race's pit stop (30 s entry to exit) leaves the out-lap timed.
    race = Feed()
    race.send(90_000, timing(44, NumberOfLaps=1, LastLapTime={"Value": "1:30.000"}))
    race.send(178_000, timing(44, InPit=True))
    race.send(180_000, timing(44, NumberOfLaps=2, LastLapTime={"Value": "1:30.000"}))
    race.send(208_000, timing(44, InPit=False, PitOut=True))
    race.send(295_000, timing(44, NumberOfLaps=3, LastLapTime={"Value": "1:55.000"}))
    assert [lap.lap_time_ms for lap in race.end()] == [90_000, 90_000, 115_000]


def test_a_later_crossings_time_does_not_replace_a_laps() -> None:
    # The count never moved on after lap 2 (the car went to the garage); a quarter of an
    # hour later the feed sends the time since that crossing: not a correction.
    feed = Feed()
    feed.send(90_000, timing(44, NumberOfLaps=1, LastLapTime={"Value": "1:30.000"}))
    feed.send(180_000, timing(44, LastLapTime={"Value": "1:30.500"}))
    feed.send(1_080_000, timing(44, LastLapTime={"Value": "15:00.000"}))
    laps = feed.end()
    assert laps[-1].lap_time_ms == 90_500
    assert "later_crossing_time_ignored" in laps[-1].flags
