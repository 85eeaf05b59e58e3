"""The example configuration (contrib/f1daemon.toml) validates and cannot go stale.

It must name every setting of every section of `f1daemon.config` with its default
value (two deliberate exceptions: the paths the systemd unit gives the daemon), and its
commented-out [[sources]] examples must validate once uncommented and, together, name
every source setting.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from f1daemon.config import Config, SourceKind, SourceSettings, load_config
from tests.conftest import REPO

EXAMPLE = REPO / "contrib" / "f1daemon.toml"
# Settings whose defaults come from the environment ($STATE_DIRECTORY,
# $RUNTIME_DIRECTORY): the example names what they are under systemd/f1daemon.service.
UNIT_PATHS = {
    ("daemon", "state_dir"): Path("/var/lib/f1daemon"),
    ("control", "socket"): Path("/run/f1daemon/f1daemon.sock"),
}
# A commented-out TOML line of a [[sources]] example: "#" then the TOML, no space.
COMMENTED_TOML = re.compile(r"^#(?=\[\[sources\]\]|[a-z_]+ = )", re.MULTILINE)


def _sections() -> dict[str, type[BaseModel]]:
    """Every [section] of the configuration and its model, as Config declares them."""
    sections: dict[str, type[BaseModel]] = {}
    for name, info in Config.model_fields.items():
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            sections[name] = model
    return sections


def _example() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def test_config_declares_the_sections_the_example_covers() -> None:
    # If this fails, Config gained or lost a section: update the example and this list.
    assert set(_sections()) == {"daemon", "control", "metrics", "http", "writer", "supervision"}
    assert "sources" in Config.model_fields


def test_example_validates() -> None:
    config = load_config(EXAMPLE, environ={})
    assert config.sources == (), "the example must start no source by itself"
    # Under the unit, the defaults land where the example says they are.
    assert config.store_url == "sqlite:////var/lib/f1daemon/events.db"
    assert config.control.socket == Path("/run/f1daemon/f1daemon.sock")


@pytest.mark.parametrize("section", sorted(_sections()))
def test_example_names_every_setting(section: str) -> None:
    model = _sections()[section]
    table = _example().get(section)
    assert isinstance(table, dict), f"[{section}] is missing from {EXAMPLE.name}"
    missing = sorted(set(model.model_fields) - set(table))
    unknown = sorted(set(table) - set(model.model_fields))
    assert not missing, f"[{section}] settings missing from {EXAMPLE.name}: {missing}"
    assert not unknown, f"[{section}] settings unknown to f1daemon.config: {unknown}"


@pytest.mark.parametrize("section", sorted(_sections()))
def test_example_shows_the_defaults(section: str) -> None:
    model = _sections()[section]
    shown = model.model_validate(_example()[section])
    default = model()
    for setting in model.model_fields:
        value = getattr(shown, setting)
        if (section, setting) in UNIT_PATHS:
            assert value == UNIT_PATHS[section, setting]
        else:
            expected = getattr(default, setting)
            assert value == expected, (
                f"[{section}] {setting} = {value!r} in {EXAMPLE.name}, but the default is "
                f"{expected!r}: update the example (value and comment)"
            )


def test_every_setting_is_commented() -> None:
    # Each setting is preceded by a comment that states its default.
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"^([a-z_]+) = ", line)
        if match is None:
            continue
        comment: list[str] = []
        for previous in reversed(lines[:number]):
            if not previous.startswith("# "):
                break
            comment.append(previous)
        text = " ".join(comment)
        assert comment, f"{match[1]} (line {number + 1}) has no comment"
        assert "Default" in text, f"{match[1]} (line {number + 1}): the comment gives no default"


EXCLUSIVE_SETTINGS = [("token_file", "token_env")]


def test_commented_source_examples_validate(tmp_path: Path) -> None:
    recording = tmp_path / "recording.txt"
    recording.write_text("", encoding="utf-8")
    text = COMMENTED_TOML.sub("", EXAMPLE.read_text(encoding="utf-8"))
    text = re.sub(r'^path = ".*"$', f'path = "{recording}"', text, flags=re.MULTILINE)
    uncommented = tmp_path / "f1daemon.toml"
    uncommented.write_text(text, encoding="utf-8")

    config = load_config(uncommented, environ={})

    assert {source.kind for source in config.sources} == set(get_args(SourceKind))
    named: set[str] = set()
    for table in tomllib.loads(text)["sources"]:
        named.update(table)
    # Settings that exclude each other: one of each pair is shown, both are described.
    for one, other in EXCLUSIVE_SETTINGS:
        if one in named or other in named:
            named.update((one, other))
    missing = sorted(set(SourceSettings.model_fields) - named)
    assert not missing, f"[[sources]] settings not shown in {EXAMPLE.name}: {missing}"
    documented = EXAMPLE.read_text(encoding="utf-8")
    for setting in SourceSettings.model_fields:
        assert re.search(rf"^#   {setting}\b", documented, re.MULTILINE), (
            f"[[sources]] {setting} is not described in {EXAMPLE.name}"
        )
