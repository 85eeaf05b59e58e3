"""Packaging: one version everywhere (pyproject.toml is its source), a license file."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import f1daemon
from f1daemon import _native

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        version = tomllib.load(f)["project"]["version"]
    assert isinstance(version, str)
    return version


def test_package_version_is_pyproject_version() -> None:
    assert f1daemon.__version__ == _pyproject_version()


def test_native_crate_version_is_pyproject_version() -> None:
    with (ROOT / "native" / "Cargo.toml").open("rb") as f:
        cargo = tomllib.load(f)
    assert cargo["package"]["version"] == _pyproject_version()
    # The built extension reports the crate's version (`CARGO_PKG_VERSION`).
    assert _native.__version__ == _pyproject_version()


def test_newest_changelog_release_is_pyproject_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(r"^## \[Unreleased\]$", text, re.MULTILINE)
    releases = re.findall(r"^## \[([^\]]+)\] - (\d{4}-\d{2}-\d{2})$", text, re.MULTILINE)
    assert releases, "no dated release section in CHANGELOG.md"
    assert releases[0][0] == _pyproject_version()


def test_license_file_is_mit() -> None:
    license_file = ROOT / "LICENSE"
    assert license_file.is_file()
    assert "MIT License" in license_file.read_text(encoding="utf-8")
