"""The README's walk-through works line by line.

Every ```console block of README.md is a transcript: `$ COMMAND` lines (a trailing `\\`
continues a command on the next line) and, under each, lines of what it prints, `…`
standing for what is left out (a whole line, or part of one). The test runs every
command in order, in one shell, in a temporary folder laid out as a fresh clone after
`make demo` would be — `.venv` (this checkout's), and `../shared/f1data` (the
recordings) beside it — and fails at the first command that exits non-zero, or whose
output lacks a line the README shows (in the README's order; runs of blanks are one).

`make demo` is the only command not run as written: the build it starts is this
checkout's own, so the test runs what it runs after the build, `f1daemon demo`.
Blocks of other kinds (```text: synopses with placeholders) are not run, and the README
holds no ```sh, ```bash or ```shell block, so no shell block escapes the test.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from f1daemon.feed.pipeline import PIPELINE_VERSION
from tests.conftest import REPO, TESTDATA

README = REPO / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
# What the test runs for a command whose build is this checkout's (see the docstring).
INSTEAD = {"make demo": ".venv/bin/f1daemon demo"}
ELLIPSIS = "…"


@dataclass(frozen=True)
class Step:
    """One command of the walk-through and the lines the README shows it printing."""

    command: str
    shown: tuple[str, ...]


def steps(markdown: str) -> list[Step]:
    """The commands of every console block, in order, with their shown output."""
    found: list[Step] = []
    for kind, body in FENCE.findall(markdown):
        if kind != "console":
            continue
        command: list[str] = []
        shown: list[str] = []
        for line in body.splitlines():
            if line.startswith("$ ") and not (command and command[-1].endswith("\\")):
                if command:
                    found.append(Step("\n".join(command), tuple(shown)))
                command, shown = [line[2:]], []
            elif command and command[-1].endswith("\\") and not shown:
                command.append(line)
            elif command:
                shown.append(line)
        if command:
            found.append(Step("\n".join(command), tuple(shown)))
    return found


def _normal(line: str) -> str:
    return " ".join(line.split())


def _pattern(shown: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in _normal(shown).split(ELLIPSIS)]
    return re.compile("^" + ".*".join(parts) + "$")


def missing_line(shown: tuple[str, ...], printed: str) -> str | None:
    """The first shown line that the printed output lacks (in order), or None."""
    lines = [_normal(line) for line in printed.splitlines()]
    at = 0
    for expected in shown:
        if not _normal(expected) or _normal(expected) == ELLIPSIS:
            continue
        pattern = _pattern(expected)
        while at < len(lines) and not pattern.match(lines[at]):
            at += 1
        if at == len(lines):
            return expected
        at += 1
    return None


def test_the_transcript_reader_reads_commands_outputs_and_ellipses() -> None:
    markdown = (
        "```console\n$ echo a \\\n  b\na b\n$ true\n```\n"
        "```text\n$ not run\n```\n```console\n$ ls\n…\nx…z\n```\n"
    )
    assert steps(markdown) == [
        Step("echo a \\\n  b", ("a b",)),
        Step("true", ()),
        Step("ls", (ELLIPSIS, "x…z")),
    ]
    assert missing_line(("x…z", "last"), "first\nx and z\nlast\n") is None
    assert missing_line(("last", "x…z"), "first\nx and z\nlast\n") == "x…z"  # order counts
    assert missing_line(("a  b",), "a\tb\n") is None


def test_every_shell_block_of_the_readme_is_a_transcript_the_test_runs() -> None:
    kinds = {kind for kind, _ in FENCE.findall(README.read_text(encoding="utf-8"))}
    assert "console" in kinds
    assert not kinds & {"sh", "bash", "shell", "zsh"}


def _script(walk: list[Step], outputs: Path) -> str:
    """One shell running every step, each one's output and status in files of its own,
    stopping at the first that fails."""
    lines = ["set +e"]
    for number, step in enumerate(walk):
        command = INSTEAD.get(step.command, step.command)
        out, status = outputs / f"{number}.out", outputs / f"{number}.status"
        lines.append(f"{{ {command}\n}} >{shlex.quote(str(out))} 2>&1 </dev/null")
        lines.append(f"s=$?; echo $s >{shlex.quote(str(status))}; [ $s -eq 0 ] || exit $s")
    # Whatever the walk-through left running in the background, stopped.
    lines.append("kill $(jobs -p) 2>/dev/null; wait; exit 0")
    return "\n".join(lines) + "\n"


def test_the_readme_works_line_by_line(tmp_path: Path) -> None:
    walk = steps(README.read_text(encoding="utf-8"))
    assert len(walk) > 20
    clone, outputs, runtime, home = (tmp_path / n for n in ("clone", "out", "run", "home"))
    for folder in (clone, outputs, runtime, home, tmp_path / "shared"):
        folder.mkdir()
    (clone / ".venv").symlink_to(REPO / ".venv")
    (clone / "examples").symlink_to(REPO / "examples")
    (tmp_path / "shared" / "f1data").symlink_to(TESTDATA)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "LANG": "C.UTF-8",
        # A login session's runtime folder, where `ctl` finds the daemon's socket.
        "XDG_RUNTIME_DIR": str(runtime),
        # Matplotlib's font cache, built once per user: this one's, not a new one.
        "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR", str(Path.home() / ".config/matplotlib")),
        # Another test's daemon may hold the default metrics port.
        "F1DAEMON_METRICS_PORT": "0",
    }
    script = tmp_path / "walk-through.sh"
    script.write_text(_script(walk, outputs), encoding="utf-8")
    # In a session of its own, so that a step that hangs is stopped with whatever it
    # started in the background; the step is named below.
    shell = subprocess.Popen(["bash", str(script)], cwd=clone, env=env, start_new_session=True)
    try:
        shell.wait(timeout=840)
    except subprocess.TimeoutExpired:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()
    for number, step in enumerate(walk):
        status_file = outputs / f"{number}.status"
        assert status_file.exists(), f"not finished within 840 s: $ {step.command}"
        printed = (outputs / f"{number}.out").read_text(encoding="utf-8", errors="replace")
        status = int(status_file.read_text())
        assert status == 0, f"$ {step.command}\nexit status {status}:\n{printed}"
        lacking = missing_line(step.shown, printed)
        assert lacking is None, f"$ {step.command}\ndoes not print {lacking!r}:\n{printed}"


def test_the_operations_guide_shows_this_pipeline_version() -> None:
    guide = (REPO / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"pipeline(?:_version\": \"| )(\d+\.\d+\.\d+)", guide))
    assert shown == {PIPELINE_VERSION}
