"""The control socket's server and protocol: replies, limits, misbehaving clients, peers."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f1daemon.control.protocol import ProtocolError, Request, parse_request
from f1daemon.control.server import ControlLimits, ControlServer, SocketInUseError


async def echo_handler(request: Request) -> object:
    if request.command == "pause" and request.args == ("nobody",):
        raise ProtocolError("no source named 'nobody'")
    if request.command == "reload":
        raise RuntimeError("boom")
    return {"command": request.command, "args": list(request.args)}


_opened: list[trio.SocketStream] = []


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ControlServer]:
    limits = ControlLimits(max_line_bytes=1024, client_timeout_s=0.5, max_clients=4)
    control = ControlServer(tmp_path / "ctl.sock", echo_handler, limits, mode=0o660)
    async with trio.open_nursery() as nursery:
        await nursery.start(control.serve)
        yield control
        nursery.cancel_scope.cancel()
    while _opened:
        await _opened.pop().aclose()


async def connect(control: ControlServer) -> trio.SocketStream:
    """A client connection, closed when the test ends."""
    stream = await trio.open_unix_socket(str(control.path))
    _opened.append(stream)
    return stream


_unread: dict[int, bytes] = {}  # bytes received past a reply's newline, per stream


async def read_line(stream: trio.SocketStream) -> dict[str, object] | None:
    data = _unread.pop(id(stream), b"")
    while b"\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        data += chunk
    line, _, rest = data.partition(b"\n")
    _unread[id(stream)] = rest
    reply = orjson.loads(line)
    assert isinstance(reply, dict)
    return reply


async def ask(stream: trio.SocketStream, line: bytes) -> dict[str, object] | None:
    await stream.send_all(line)
    return await read_line(stream)


async def test_replies_have_ok_and_result_or_error(server: ControlServer) -> None:
    stream = await connect(server)
    assert await ask(stream, b'{"command": "status", "id": 7}\n') == {
        "ok": True,
        "result": {"command": "status", "args": []},
        "id": 7,
    }
    assert await ask(stream, b'{"command": "pause", "args": ["nobody"]}\n') == {
        "ok": False,
        "error": "no source named 'nobody'",
    }
    reply = await ask(stream, b'{"command": "reload"}\n')
    assert reply == {"ok": False, "error": "internal error: RuntimeError: boom"}
    # Several requests in one write, and one request split over writes.
    await stream.send_all(b'{"command": "health"}\n{"command": "sources"}\n{"comm')
    first = await read_line(stream)
    assert first is not None
    assert first["result"] == {"command": "health", "args": []}
    await stream.send_all(b'and": "metrics"}\n')
    assert await read_line(stream) is not None
    assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o660


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"{not json\n", "not JSON"),
        (b"[1, 2]\n", "a request is a JSON object, not list"),
        (b'{"command": 3}\n', '"command": a string'),
        (b'{"command": "dance"}\n', "unknown command 'dance'"),
        (b'{"command": "pause"}\n', "usage: pause SOURCE"),
        (b'{"command": "status", "args": [1]}\n', '"args" must be a list of strings'),
        (b'{"command": "status", "sudo": true}\n', "unknown request fields: sudo"),
        (b"\xff\xfe\n", "not JSON"),
    ],
)
async def test_bad_requests_get_an_error_and_the_connection_stays(
    server: ControlServer, line: bytes, error: str
) -> None:
    stream = await connect(server)
    reply = await ask(stream, line)
    assert reply is not None
    assert reply["ok"] is False
    assert error in str(reply["error"])
    assert (await ask(stream, b'{"command": "status"}\n') or {})["ok"] is True


async def test_an_oversized_line_is_refused_and_closed(server: ControlServer) -> None:
    stream = await connect(server)
    reply = await ask(stream, b"x" * 5000)  # no newline: the limit is 1024
    assert reply == {"ok": False, "error": "request line longer than 1024 bytes; closing"}
    assert await stream.receive_some(10) == b""
    other = await connect(server)
    assert (await ask(other, b'{"command": "status"}\n') or {})["ok"] is True


async def test_a_silent_client_is_disconnected_and_others_are_served(
    server: ControlServer,
) -> None:
    silent = await connect(server)
    with trio.fail_after(5):
        assert await silent.receive_some(10) == b""  # closed after client_timeout_s
    stream = await connect(server)
    assert (await ask(stream, b'{"command": "status"}\n') or {})["ok"] is True


async def test_too_many_clients_are_told_to_retry(server: ControlServer) -> None:
    held = [await connect(server) for _ in range(4)]
    for stream in held:  # each is being served
        assert (await ask(stream, b'{"command": "status"}\n') or {})["ok"] is True
    # This test's user is the server's own: it has the slot kept for operators too.
    kept = await connect(server)
    assert (await ask(kept, b'{"command": "status"}\n') or {})["ok"] is True
    extra = await connect(server)
    assert await read_line(extra) == {"ok": False, "error": "too many clients; retry"}
    assert server.clients == 5


async def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    control = ControlServer(path, echo_handler, ControlLimits())
    async with trio.open_nursery() as nursery:
        await nursery.start(control.serve)
        async with await trio.open_unix_socket(str(path)) as stream:
            assert (await ask(stream, b'{"command": "status"}\n') or {})["ok"] is True
        nursery.cancel_scope.cancel()
    assert not path.exists()  # removed on the way out


async def test_a_regular_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    path.write_text("precious", encoding="utf-8")
    control = ControlServer(path, echo_handler, ControlLimits())
    with pytest.raises(FileExistsError, match="not a socket"):
        await control.serve()
    assert path.read_text(encoding="utf-8") == "precious"


SYSTEM_PYTHON = "/usr/bin/python3"  # one that user nobody may run (the venv's may not be)


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None or not Path(SYSTEM_PYTHON).exists(),
    reason="needs root, runuser and a system python3 to connect as another user",
)
async def test_peers_are_checked_with_so_peercred() -> None:
    # pytest's own temporary folders are private to root: another user needs a way in.
    folder = Path(tempfile.mkdtemp(prefix="f1daemon-peercred-"))
    os.chmod(folder, 0o755)  # noqa: S103 (user nobody must reach the socket)
    # World-connectable on purpose: the refusal must come from the peer check.
    control = ControlServer(
        folder / "ctl.sock", echo_handler, ControlLimits(allowed_uids=frozenset()), mode=0o666
    )
    client = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.connect(sys.argv[1])\n"
        's.sendall(b\'{"command": "status"}\\n\')\n'
        "print(s.recv(4096).decode().strip())\n"
    )
    nobody = ["runuser", "-u", "nobody", "--", SYSTEM_PYTHON, "-c", client, str(control.path)]
    async with trio.open_nursery() as nursery:
        await nursery.start(control.serve)
        refused = await trio.run_process(nobody, capture_stdout=True)
        reply = orjson.loads(refused.stdout)
        assert reply["ok"] is False
        assert reply["error"].startswith("permission denied: pid ")
        uid = pwd.getpwnam("nobody").pw_uid
        control.limits = ControlLimits(allowed_uids=frozenset({uid}))
        allowed = await trio.run_process(nobody, capture_stdout=True)
        assert orjson.loads(allowed.stdout)["ok"] is True
        nursery.cancel_scope.cancel()
    shutil.rmtree(folder)


NOBODY_AVAILABLE = (
    os.geteuid() == 0 and shutil.which("runuser") is not None and Path(SYSTEM_PYTHON).exists()
)
needs_nobody = pytest.mark.skipif(
    not NOBODY_AVAILABLE,
    reason="needs root, runuser and a system python3 to connect as another user",
)


def nobody_folder() -> Path:
    """A folder user nobody can reach (pytest's temporary folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="f1daemon-ctl-"))
    os.chmod(folder, 0o755)  # noqa: S103 (user nobody must reach the socket)
    return folder


def as_nobody(script: str, *args: str) -> list[str]:
    return ["runuser", "-u", "nobody", "--", SYSTEM_PYTHON, "-c", script, *args]


# Connects COUNT times and closes each connection at once, without reading anything.
CONNECT_AND_CLOSE = (
    "import socket, sys\n"
    "for _ in range(int(sys.argv[2])):\n"
    "    s = socket.socket(socket.AF_UNIX)\n"
    "    s.connect(sys.argv[1])\n"
    "    s.close()\n"
)


@needs_nobody
async def test_refused_peers_that_close_at_once_leave_the_server_serving() -> None:
    """A refused peer gone before its refusal is sent (another uid, or one client too
    many) ends its own connection, not the server."""
    folder = nobody_folder()
    control = ControlServer(
        folder / "ctl.sock", echo_handler, ControlLimits(max_clients=2), mode=0o666
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(control.serve)
            # Another uid, not allowed: refused, and gone before the refusal is sent.
            await trio.run_process(as_nobody(CONNECT_AND_CLOSE, str(control.path), "300"))
            # One client too many: every slot (the operators' one too) is held by us.
            held = [await trio.open_unix_socket(str(control.path)) for _ in range(3)]
            for stream in held:
                assert (await ask(stream, b'{"command": "status"}\n') or {})["ok"] is True
            uid = pwd.getpwnam("nobody").pw_uid
            control.limits = ControlLimits(max_clients=2, allowed_uids=frozenset({uid}))
            await trio.run_process(as_nobody(CONNECT_AND_CLOSE, str(control.path), "300"))
            for stream in held:
                await stream.aclose()
            await trio.testing.wait_all_tasks_blocked()  # the server saw them close
            assert control.clients == 0
            async with await trio.open_unix_socket(str(control.path)) as stream:
                assert (await ask(stream, b'{"command": "status"}\n') or {})["ok"] is True
            nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(folder)


# Opens COUNT connections, has each served once (a status), then holds them silently
# until its stdin closes.
HOLD_SLOTS = (
    "import socket, sys\n"
    "held = []\n"
    "for _ in range(int(sys.argv[2])):\n"
    "    s = socket.socket(socket.AF_UNIX)\n"
    "    s.connect(sys.argv[1])\n"
    '    s.sendall(b\'{"command": "status"}\\n\')\n'
    "    assert b'\"ok\": true' in s.recv(4096).replace(b'\"ok\":true', b'\"ok\": true')\n"
    "    held.append(s)\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


@needs_nobody
async def test_the_operator_keeps_a_slot_that_other_clients_cannot_take() -> None:
    folder = nobody_folder()
    uid = pwd.getpwnam("nobody").pw_uid
    limits = ControlLimits(max_clients=3, client_timeout_s=60, allowed_uids=frozenset({uid}))
    control = ControlServer(folder / "ctl.sock", echo_handler, limits, mode=0o666)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(control.serve)
            holder = await trio.lowlevel.open_process(
                as_nobody(HOLD_SLOTS, str(control.path), "3"),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert holder.stdout is not None
            assert holder.stdin is not None
            with trio.fail_after(20):
                assert (await holder.stdout.receive_some(100)).strip() == b"held"
            assert control.clients == 3
            # Every ordinary slot is held: another nobody is told to retry ...
            refused = await trio.run_process(
                as_nobody(ONE_STATUS, str(control.path)), capture_stdout=True
            )
            assert orjson.loads(refused.stdout)["error"] == "too many clients; retry"
            # ... and root (the server's own user here) is served in the kept slot.
            with trio.fail_after(1):
                async with await trio.open_unix_socket(str(control.path)) as stream:
                    assert (await ask(stream, b'{"command": "status"}\n') or {})["ok"] is True
            await holder.stdin.aclose()
            await holder.wait()
            nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(folder)


ONE_STATUS = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "s.connect(sys.argv[1])\n"
    's.sendall(b\'{"command": "status"}\\n\')\n'
    "print(s.recv(4096).decode().strip())\n"
)


async def test_a_trickled_request_line_must_be_complete_within_its_deadline(
    tmp_path: Path,
) -> None:
    """A byte every 0.1 s never trips the idle timeout (0.5 s); the line's own deadline
    (1 s from its first byte) ends it."""
    limits = ControlLimits(client_timeout_s=0.5, request_timeout_s=1.0, max_clients=1)
    control = ControlServer(tmp_path / "ctl.sock", echo_handler, limits)
    async with trio.open_nursery() as nursery:
        await nursery.start(control.serve)
        async with await trio.open_unix_socket(str(control.path)) as stream:
            began = trio.current_time()
            request = b'{"command": "status"}' + b" " * 1000 + b"\n"
            with trio.fail_after(5):
                try:
                    for byte in request:
                        await stream.send_all(bytes([byte]))
                        await trio.sleep(0.1)
                except trio.BrokenResourceError:
                    pass  # the server closed: the reply is read below
                reply = await read_line(stream)
            assert reply == {
                "ok": False,
                "error": "request line not complete within 1 s; closing",
            }
            assert 0.9 < trio.current_time() - began < 2.5
        # Its slot is free again (max_clients is 1 and this user has the kept slot too:
        # two at once must be served).
        first = await connect(control)
        second = await connect(control)
        for stream in (first, second):
            assert (await ask(stream, b'{"command": "status"}\n') or {})["ok"] is True
        nursery.cancel_scope.cancel()


async def test_a_client_that_does_not_read_its_replies_costs_one_reply(
    tmp_path: Path,
) -> None:
    answered: list[str] = []

    async def counting(request: Request) -> object:
        answered.append(request.command)
        return "x" * 50_000  # a reply as large as a busy daemon's metrics

    limits = ControlLimits(client_timeout_s=1.0)
    control = ControlServer(tmp_path / "ctl.sock", counting, limits)
    async with trio.open_nursery() as nursery:
        await nursery.start(control.serve)
        async with await trio.open_unix_socket(str(control.path)) as stream:
            with trio.fail_after(5):
                await stream.send_all(b'{"command": "metrics"}\n' * 1000)
            await trio.sleep(0.5)
            assert answered == ["metrics"]  # the rest wait for the first to be read
            first = await read_line(stream)
            assert first is not None
            assert first["ok"] is True
            # Not reading again: a reply or two more are worked out, and after
            # client_timeout_s the connection ends.
            await trio.sleep(1.5)
            assert 2 <= len(answered) <= 3
            assert control.clients == 0
        assert len(answered) <= 3
        nursery.cancel_scope.cancel()


async def test_a_live_socket_is_never_replaced_or_removed(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    first = ControlServer(path, echo_handler, ControlLimits())
    async with trio.open_nursery() as nursery:
        await nursery.start(first.serve)
        second = ControlServer(path, echo_handler, ControlLimits())
        with pytest.raises(SocketInUseError) as refused, trio.fail_after(5):
            await second.serve()
        # One line naming the running one (this process: both servers are ours here).
        assert str(refused.value) == (
            f"{path}: f1daemon (pid {os.getpid()}) is already serving this control socket; "
            "stop it first, or give this one another [control] socket"
        )
        second.close()
        assert stat.S_ISSOCK(path.lstat().st_mode)
        async with await trio.open_unix_socket(str(path)) as stream:
            assert (await ask(stream, b'{"command": "status"}\n') or {})["ok"] is True
        # The path taken over by another socket: on its way out the first server
        # leaves that one alone.
        path.unlink()
        other = socket.socket(socket.AF_UNIX)
        other.bind(str(path))
        nursery.cancel_scope.cancel()
    assert stat.S_ISSOCK(path.lstat().st_mode)
    other.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {"command": st.sampled_from(["status", "pause", "tag", "session", "x"])},
            optional={"args": json_values, "id": json_values},
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_parse_request_accepts_or_says_why(line: bytes) -> None:
    """Any bytes: a valid request, or a ProtocolError with a message — nothing else."""
    try:
        request = parse_request(line)
    except ProtocolError as error:
        message = str(error)
        assert message
    else:
        assert isinstance(request.command, str)
        assert all(isinstance(a, str) for a in request.args)


async def test_an_operator_behind_a_flood_in_the_backlog_is_taken_at_the_next_turn(
    tmp_path: Path,
) -> None:
    # 120 connections wait in the backlog (made while the server cannot run), then the
    # operator's with its request. Taken one per turn of the loop (a turn runs every
    # client's task), the operator would wait 120 turns; taken all at once, a few.
    limits = ControlLimits(client_timeout_s=30, max_clients=200)
    control = ControlServer(tmp_path / "ctl.sock", echo_handler, limits)
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await trio.lowlevel.checkpoint()

    flood: list[socket.socket] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(control.serve)
        nursery.start_soon(count_turns)
        for _ in range(120):  # no checkpoint in between: all in the backlog at once
            silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            silent.connect(str(control.path))
            flood.append(silent)
        operator = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        operator.connect(str(control.path))
        operator.sendall(b'{"command": "status"}\n')
        started = turns
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(operator))
        with trio.fail_after(10):
            reply = await read_line(stream)
        taken = turns - started
        await stream.aclose()
        nursery.cancel_scope.cancel()
    for silent in flood:
        silent.close()
    assert reply == {"ok": True, "result": {"command": "status", "args": []}}
    assert taken < 20, taken  # (one by one: 120 and more)
