"""`make bench`: every benchmark here, each measured against a baseline in the same run."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path


def main() -> None:
    """Run each `benches/bench_*.py` module's `main()`."""
    folder = Path(__file__).parent
    for module in sorted(
        m.name for m in pkgutil.iter_modules([str(folder)]) if m.name.startswith("bench_")
    ):
        print(f"== {module}")
        importlib.import_module(f"benches.{module}").main()
        print()


main()
