"""The data schemas document is generated from the code and must be current."""

from __future__ import annotations

from pathlib import Path

from f1daemon.cli import EXPORT_KINDS
from f1daemon.projections.exports import EXPORTS
from f1daemon.schemas import render

DOC = Path(__file__).resolve().parent.parent / "docs" / "DATA_SCHEMAS.md"


def test_the_data_schemas_document_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/DATA_SCHEMAS.md is out of date: python -m f1daemon.schemas > docs/DATA_SCHEMAS.md"
    )


def test_every_export_and_every_column_is_documented() -> None:
    text = render()
    for export in EXPORTS.values():
        assert f"### `{export.name}`" in text
        for column in export.columns():
            assert column.description, f"{export.name}.{column.name} has no description"
            assert f"| `{column.name}` |" in text


def test_the_cli_offers_every_export() -> None:
    assert tuple(EXPORTS) == EXPORT_KINDS
