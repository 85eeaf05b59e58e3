"""The simulator's model of a race weekend: the tracks, the tyres, the physics'
constants, the fictional field, the topics it writes, and its seeded random streams."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Final

SOURCE_NAME: Final = "simulator"

Json = dict[str, Any]


@dataclass(frozen=True)
class Track:
    """A circuit as the simulator knows it."""

    key: str
    meeting_name: str  # the real event's name; the simulated one is "Simulated …"
    location: str
    country_key: int
    country_code: str
    country_name: str
    circuit_key: int
    circuit_short_name: str
    gmt_offset_hours: int
    length_m: int
    base_lap_ms: int  # race pace of an average car on medium tyres, no fuel, rubbered track
    sector_split: tuple[float, float, float]  # fractions of the lap (time and distance)
    pit_loss_ms: int  # pit-lane time lost against a racing lap, without the stop itself
    pit_speed_kmh: int
    safety_car_likelihood: float  # chance of a safety-car period in a race
    air_temp_range: tuple[float, float]  # °C
    top_speed_kmh: int
    corners: tuple[tuple[float, int], ...]  # (fraction of the lap, apex speed km/h)
    drs_zones: tuple[tuple[float, float], ...]  # fractions of the lap
    vsc_likelihood: float = 0.3  # chance of a virtual-safety-car period in a race
    red_flag_likelihood: float = 0.05  # chance of a red flag (then a restart behind the SC)
    rain_likelihood: float = 0.1  # chance of a shower during the race
    altitude_m: float = 10.0  # height difference round the lap


TRACKS: Final[dict[str, Track]] = {
    "monza": Track(
        key="monza",
        meeting_name="Italian Grand Prix",
        location="Monza",
        country_key=13,
        country_code="ITA",
        country_name="Italy",
        circuit_key=39,
        circuit_short_name="Monza",
        gmt_offset_hours=2,
        length_m=5793,
        base_lap_ms=84_500,
        sector_split=(0.32, 0.36, 0.32),
        pit_loss_ms=23_000,
        pit_speed_kmh=80,
        safety_car_likelihood=0.35,
        air_temp_range=(23.0, 31.0),
        top_speed_kmh=345,
        corners=((0.12, 80), (0.33, 100), (0.43, 185), (0.48, 170), (0.70, 195), (0.90, 210)),
        drs_zones=((0.95, 1.0), (0.0, 0.10), (0.52, 0.66)),
        vsc_likelihood=0.3,
        red_flag_likelihood=0.05,
        rain_likelihood=0.1,
        altitude_m=12.0,
    ),
    "monaco": Track(
        key="monaco",
        meeting_name="Monaco Grand Prix",
        location="Monte Carlo",
        country_key=114,
        country_code="MON",
        country_name="Monaco",
        circuit_key=22,
        circuit_short_name="Monte Carlo",
        gmt_offset_hours=2,
        length_m=3337,
        base_lap_ms=76_000,
        sector_split=(0.26, 0.46, 0.28),
        pit_loss_ms=19_000,
        pit_speed_kmh=60,
        safety_car_likelihood=0.70,
        air_temp_range=(19.0, 25.0),
        top_speed_kmh=290,
        corners=(
            (0.05, 105),
            (0.17, 150),
            (0.21, 120),
            (0.27, 75),
            (0.32, 50),
            (0.40, 85),
            (0.55, 80),
            (0.62, 170),
            (0.70, 150),
            (0.73, 110),
            (0.88, 70),
            (0.93, 75),
        ),
        drs_zones=((0.96, 1.0), (0.0, 0.04)),
        vsc_likelihood=0.25,
        red_flag_likelihood=0.12,
        rain_likelihood=0.1,
        altitude_m=42.0,
    ),
    "spa": Track(
        key="spa",
        meeting_name="Belgian Grand Prix",
        location="Spa-Francorchamps",
        country_key=16,
        country_code="BEL",
        country_name="Belgium",
        circuit_key=7,
        circuit_short_name="Spa-Francorchamps",
        gmt_offset_hours=2,
        length_m=7004,
        base_lap_ms=108_000,
        sector_split=(0.29, 0.45, 0.26),
        pit_loss_ms=19_500,
        pit_speed_kmh=80,
        safety_car_likelihood=0.25,
        air_temp_range=(14.0, 22.0),
        top_speed_kmh=335,
        corners=(
            (0.05, 70),
            (0.30, 150),
            (0.40, 100),
            (0.52, 240),
            (0.62, 130),
            (0.70, 220),
            (0.93, 75),
        ),
        drs_zones=((0.14, 0.27), (0.97, 1.0), (0.0, 0.03)),
        vsc_likelihood=0.3,
        red_flag_likelihood=0.08,
        rain_likelihood=0.4,
        altitude_m=102.0,
    ),
    "silverstone": Track(
        key="silverstone",
        meeting_name="British Grand Prix",
        location="Silverstone",
        country_key=2,
        country_code="GBR",
        country_name="United Kingdom",
        circuit_key=2,
        circuit_short_name="Silverstone",
        gmt_offset_hours=1,
        length_m=5891,
        base_lap_ms=91_500,
        sector_split=(0.32, 0.40, 0.28),
        pit_loss_ms=20_000,
        pit_speed_kmh=80,
        safety_car_likelihood=0.30,
        air_temp_range=(15.0, 24.0),
        top_speed_kmh=320,
        corners=(
            (0.10, 110),
            (0.13, 75),
            (0.30, 140),
            (0.33, 110),
            (0.45, 270),
            (0.55, 190),
            (0.60, 160),
            (0.78, 220),
            (0.90, 110),
            (0.94, 150),
        ),
        drs_zones=((0.16, 0.28), (0.66, 0.76)),
        vsc_likelihood=0.3,
        red_flag_likelihood=0.08,
        rain_likelihood=0.3,
        altitude_m=10.0,
    ),
    "baku": Track(
        key="baku",
        meeting_name="Azerbaijan Grand Prix",
        location="Baku",
        country_key=30,
        country_code="AZE",
        country_name="Azerbaijan",
        circuit_key=144,
        circuit_short_name="Baku",
        gmt_offset_hours=4,
        length_m=6003,
        base_lap_ms=106_000,
        sector_split=(0.35, 0.41, 0.24),
        pit_loss_ms=19_500,
        pit_speed_kmh=80,
        safety_car_likelihood=0.60,
        air_temp_range=(19.0, 27.0),
        top_speed_kmh=345,
        corners=(
            (0.05, 90),
            (0.09, 95),
            (0.15, 95),
            (0.22, 95),
            (0.38, 85),
            (0.45, 110),
            (0.55, 150),
            (0.70, 110),
        ),
        drs_zones=((0.82, 1.0), (0.0, 0.04), (0.24, 0.33)),
        vsc_likelihood=0.4,
        red_flag_likelihood=0.15,
        rain_likelihood=0.03,
        altitude_m=25.0,
    ),
}


@dataclass(frozen=True)
class Compound:
    """A dry tyre compound: pace against MEDIUM and the cost of each lap of tyre age."""

    pace_offset_ms: int
    degradation_ms_per_lap: int


COMPOUNDS: Final[dict[str, Compound]] = {
    "SOFT": Compound(pace_offset_ms=-600, degradation_ms_per_lap=45),
    "MEDIUM": Compound(pace_offset_ms=0, degradation_ms_per_lap=30),
    "HARD": Compound(pace_offset_ms=450, degradation_ms_per_lap=18),
}
FUEL_EFFECT_MS_PER_LAP: Final = 35  # each lap of fuel still on board costs this much
TRACK_EVOLUTION_MS_PER_LAP: Final = 20  # the track gets this much faster every lap
LAP_NOISE_MS: Final = 150  # standard deviation of a racing lap's noise
SC_SLOWDOWN: Final = 1.45  # a lap behind the safety car takes this much longer
VSC_SLOWDOWN: Final = 1.35  # a lap under the virtual safety car (each car its own delta)
RAIN_SLOWDOWN: Final = 0.12  # a lap wholly in the heaviest shower is this much slower
RACE_START_OFFSET_MS: Final = 300_000  # lights out, from the stream's start
MAX_SPEED_KMH: Final = 360.0
MIN_TELEMETRY_HZ: Final = 0.5
MAX_TELEMETRY_HZ: Final = 60.0

TOPIC_FILES: Final[tuple[str, ...]] = (
    "SessionInfo.jsonStream",
    "SessionStatus.jsonStream",
    "DriverList.jsonStream",
    "LapCount.jsonStream",
    "TrackStatus.jsonStream",
    "WeatherData.jsonStream",
    "TimingData.jsonStream",
    "TimingAppData.jsonStream",
    "RaceControlMessages.jsonStream",
    "CarData.z.jsonStream",
    "Position.z.jsonStream",
)


# Fictional drivers and teams: this is simulated data and must never pass for real.
ROSTER: Final[tuple[tuple[int, str, str, str, str, str], ...]] = (
    (1, "Alex", "Arden", "ARD", "Aurora Racing", "2B4BD8"),
    (4, "Bruno", "Castell", "CAS", "Aurora Racing", "2B4BD8"),
    (7, "Dario", "Ferro", "FER", "Borealis F1", "D8202B"),
    (8, "Elias", "Grove", "GRO", "Borealis F1", "D8202B"),
    (11, "Felix", "Hartmann", "HAR", "Cobalt GP", "14B8A6"),
    (12, "Gael", "Ibarra", "IBA", "Cobalt GP", "14B8A6"),
    (15, "Hugo", "Jansen", "JAN", "Dynamo Motorsport", "F08A24"),
    (17, "Ivan", "Kovac", "KOV", "Dynamo Motorsport", "F08A24"),
    (19, "Jonas", "Lindqvist", "LIN", "Equinox Racing", "2F9E44"),
    (21, "Kai", "Moreau", "MOR", "Equinox Racing", "2F9E44"),
    (25, "Luca", "Novak", "NOV", "Falcon GP", "6B7280"),
    (26, "Mateo", "Okafor", "OKA", "Falcon GP", "6B7280"),
    (29, "Niko", "Petrov", "PET", "Granite F1 Team", "7C3AED"),
    (30, "Oscar", "Quint", "QUI", "Granite F1 Team", "7C3AED"),
    (32, "Pavel", "Rossi", "ROS", "Helix Racing", "E11D74"),
    (34, "Rafael", "Silva", "SIL", "Helix Racing", "E11D74"),
    (36, "Sami", "Tanaka", "TAN", "Ion Motorsport", "0EA5E9"),
    (38, "Theo", "Ulrich", "ULR", "Ion Motorsport", "0EA5E9"),
    (41, "Umar", "Vidal", "VID", "Juniper GP", "84CC16"),
    (43, "Victor", "Weiss", "WEI", "Juniper GP", "84CC16"),
)
MAX_CARS: Final = len(ROSTER)
MAX_LAPS: Final = 80


def seeded_rng(seed: int, purpose: str = "") -> random.Random:
    """A seeded stream: `random.Random(seed)` for the physics, a named one for the rest.

    String seeds are hashed with SHA-512 by `random`, so they do not depend on
    PYTHONHASHSEED: the same arguments always give the same numbers.
    """
    if not purpose:
        return random.Random(seed)  # noqa: S311 - simulation, not cryptography
    return random.Random(f"f1daemon-simulator:{seed}:{purpose}")  # noqa: S311
