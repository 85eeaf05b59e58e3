"""A worked example of the Python API: a session's fastest laps, tyre stints and one
lap's telemetry, read from the event log as Arrow tables (and pandas frames).

    python examples/race_summary.py --store sqlite:///f1daemon-data/events.db 5090

The session is F1's numeric key (5090: the 2018 Azerbaijan Grand Prix) or the log's
key; `--version TAG` reads the data as it was at a tag.
"""

from __future__ import annotations

import argparse

import pyarrow.compute as pc

import f1daemon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("session", help="F1's session key, or the log's session key")
    parser.add_argument("--store", help="the event log's URL (default: $F1DAEMON_STORE)")
    parser.add_argument("--version", help="read the data as at this tag")
    args = parser.parse_args()

    with f1daemon.open(args.store) as data:
        session = data.session(args.session)
        laps = session.laps(version=args.version)
        print(f"{session.key}: {laps.num_rows} laps of {len(pc.unique(laps['driver']))} drivers")

        # Fastest timed lap per driver, in pandas (laps race control deleted do not count).
        frame = laps.to_pandas()
        timed = frame[frame["lap_time_ms"].notna() & ~frame["deleted"]]
        best = timed.loc[timed.groupby("driver")["lap_time_ms"].idxmin()]
        best = best.sort_values("lap_time_ms")
        print("fastest laps:")
        for row in best.head(5).itertuples():
            print(f"  {row.driver_code} lap {row.lap}: {row.lap_time_ms / 1000:.3f} s")

        # Stints, straight from Arrow.
        stints = session.stints(version=args.version)
        compounds = pc.value_counts(stints["compound"]).to_pylist()
        print("stints by compound:", {c["values"]: c["counts"] for c in compounds})

        # Telemetry of the fastest driver's fastest lap, where the session has telemetry.
        fastest = best.iloc[0]
        lap = session.telemetry(
            driver=int(fastest["driver"]), lap=int(fastest["lap"]), version=args.version
        )
        if lap.num_rows:
            print(
                f"telemetry of {fastest['driver_code']} lap {fastest['lap']}: "
                f"{lap.num_rows} samples, top speed {pc.max(lap['speed']).as_py()} km/h"
            )
        else:
            print("no telemetry in this session")

        report = session.qa_report(version=args.version)
        print(f"quality score {report['quality_score'][0].as_py():.4f}")


if __name__ == "__main__":
    main()
