"""The options several commands share."""

from __future__ import annotations

import argparse


def add_session_option(parser: argparse.ArgumentParser) -> None:
    """`--session NAME`: a session by any name people use (`f1daemon.services.session_names`)."""
    parser.add_argument(
        "--session",
        metavar="NAME",
        help="the session: its key, folder, F1's session key or words such as "
        "'2018 baku race' (may be left out when the log holds one)",
    )
