"""f1daemon: the event-sourced data service of an F1 race-strategy team.

Every message a source receives is appended to an event log as it was received;
everything else (lap tables, stints, exports) is derived from that log by the feed
decoders, and can be derived again by replay.
"""

__version__ = "0.1.0"
