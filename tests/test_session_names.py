"""Sessions by the names people use: folder, key, F1's number, or a few words."""

from __future__ import annotations

from pathlib import Path

import pytest

import f1daemon
from f1daemon.cli import EXIT_USER_ERROR, main
from f1daemon.errors import UserError
from f1daemon.services.session_names import AmbiguousSessionError, resolve, session_words

BAKU = "2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race"
MEXICO_Q = "2021-11-07_Mexico_City_Grand_Prix/2021-11-06_Qualifying"
SHOOTOUT = "2023-04-30_Azerbaijan_Grand_Prix/2023-04-29_Sprint_Shootout"
FP2 = "2021-09-12_Italian_Grand_Prix/2021-09-11_Practice_2"
KEYS = [BAKU, MEXICO_Q, SHOOTOUT, FP2]


def test_a_session_types_short_names_are_its_words() -> None:
    assert {"r", "race", "2018", "azerbaijan"} <= session_words(BAKU)
    assert {"ss", "sq", "sprint", "shootout"} <= session_words(SHOOTOUT)
    assert {"fp2", "p2"} <= session_words(FP2)
    # A sprint's qualifying is not "Q".
    assert "q" not in session_words(SHOOTOUT)
    assert "r" not in session_words(MEXICO_Q)


@pytest.mark.parametrize(
    ("name", "session"),
    [
        (BAKU, BAKU),
        ("2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race", BAKU),  # the folder
        ("../shared/f1data/livetiming/2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race/", BAKU),
        ("2018 azerbaijan race", BAKU),
        ("AZERBAIJAN R", BAKU),
        ("2023 azerbaijan sq", SHOOTOUT),
        ("mexico q", MEXICO_Q),
        ("italian fp2", FP2),
        ("Azerbaijan_Grand_Prix/2018", BAKU),  # a part of the key
    ],
)
def test_a_name_that_fits_one_session_finds_it(name: str, session: str) -> None:
    assert resolve(name, KEYS) == session


def test_a_name_that_fits_several_lists_them_and_one_that_fits_none_lists_all() -> None:
    with pytest.raises(AmbiguousSessionError, match=f"names several sessions: {BAKU}, {SHOOTOUT}"):
        resolve("azerbaijan", KEYS)
    with pytest.raises(UserError, match=f"unknown session 'nowhere'; the log holds: {BAKU}"):
        resolve("nowhere", KEYS)


def test_what_sessioninfo_says_names_a_session_too() -> None:
    described = {BAKU: ["Baku", "5090", "2018"], FP2: ["Monza"]}
    assert resolve("baku race", KEYS, lambda s: described.get(s, [])) == BAKU
    assert resolve("5090", KEYS, lambda s: described.get(s, [])) == BAKU
    assert resolve("monza fp2", KEYS, lambda s: described.get(s, [])) == FP2


@pytest.fixture(scope="module")
def store(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('names') / 'events.db'}"
    folders = [testdata / "livetiming" / s.replace("/", "__") for s in (BAKU, MEXICO_Q)]
    assert main(["ingest", *map(str, folders), "--store", url]) == 0
    return url


@pytest.mark.parametrize("name", ["2018 baku race", "Baku R", "5090", BAKU.replace("/", "__")])
def test_the_cli_takes_the_names_people_use(
    store: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "laps.csv"
    assert main(["export", "laps", "--store", store, "--session", name, "-o", str(out)]) == 0
    assert out.read_text().count("\n") > 800  # Baku 2018: 841 laps and a header


def test_the_cli_lists_the_candidates_of_an_ambiguous_name(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "laps", "--store", store, "--session", "2021 mexico"]) == 0
    capsys.readouterr()
    code = main(["export", "laps", "--store", store, "--session", "20"])
    assert code == EXIT_USER_ERROR
    assert f"names several sessions: {BAKU}, {MEXICO_Q}" in capsys.readouterr().err


def test_the_python_api_takes_them_too(store: str) -> None:
    with f1daemon.open(store) as data:
        assert data.session("Baku R").key == BAKU
        assert data.session("mexico city q").key == MEXICO_Q
        assert data.session(5090).key == BAKU


def test_an_ingest_into_a_session_by_name_goes_to_that_session(
    store: str, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = testdata / "jolpica-ergast" / "2018" / "4" / "results.json"
    assert main(["ingest", str(results), "--store", store, "--session", "2018 baku race"]) == 0
    assert capsys.readouterr().out.startswith(f"{BAKU}: 1 file")
    assert main(["sessions", "--store", store]) == 0
    listed = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [BAKU, MEXICO_Q]  # no new session called "2018 baku race"
    assert main(["export", "results", "--store", store, "--session", "baku r"]) == 0
    assert capsys.readouterr().out.count("\n") == 21  # 20 drivers and a header
    # Words that name no session are not made into a key; a key names a new session.
    code = main(["ingest", str(results), "--store", store, "--session", "2018 monza race"])
    assert code == EXIT_USER_ERROR
    assert "a new session's key has the form MEETING/SESSION" in capsys.readouterr().err
