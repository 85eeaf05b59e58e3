"""The live client's bearer token: sent on every request, refused clearly, never leaked
(in logs, reprs, tracebacks or pickles)."""

from __future__ import annotations

import logging
import pickle
import traceback
from pathlib import Path

import pytest
import trio
import trio.testing

from f1daemon.domain.events import MessageReceived
from f1daemon.sources.recording import Recording, read_recording
from f1daemon.sources.signalr import (
    LiveClient,
    SignalRAuthError,
    SignalRSettings,
    TokenError,
    load_token,
    websocket_url,
)
from tests.signalr_client import (
    FAST,
    FP2,
    SESSION,
    TOKEN,
    VARIABLE,
    discard,
    received_all,
    run_client,
    topics_of,
)
from tests.signalr_server import Faults, Interruption, ReplayHub, serve_signalr


@pytest.fixture(scope="module")
def fp2(testdata: Path) -> Recording:
    return read_recording(testdata / FP2)


@pytest.fixture(scope="module")
def expected(fp2: Recording) -> list[MessageReceived]:
    facts = list(fp2.facts(SESSION))
    assert all(isinstance(f, MessageReceived) for f in facts)  # fp2 has no damaged line
    return [f for f in facts if isinstance(f, MessageReceived)]


# -- the bearer token: sent, never leaked -------------------------------------------------


async def test_bearer_token_is_sent_and_never_leaked(
    fp2: Recording,
    expected: list[MessageReceived],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every library's debug logging too
    monkeypatch.setenv(VARIABLE, TOKEN)
    hub = ReplayHub.from_recording(
        fp2,
        Faults(require_token=TOKEN, interruptions=(Interruption(100),)),
    )
    async with serve_signalr(hub) as url:
        settings = SignalRSettings(
            url=url, topics=topics_of(expected), token_env=VARIABLE, backoff=FAST
        )
        items, _ = await run_client(settings, received_all(300))

    assert len(hub.connections) == 2  # reconnected (and re-authorised) after the drop
    assert [(h.method, h.status) for h in hub.http] == [
        ("OPTIONS", 204), ("POST", 200), ("GET", 101)
    ] * 2  # fmt: skip
    assert all(h.headers["authorization"] == f"Bearer {TOKEN}" for h in hub.http)
    token = load_token(settings)
    assert token is not None
    assert token.reveal() == TOKEN
    seen = [caplog.text, repr(settings), repr(token), str(token), repr(items)]
    assert "live timing: connected" in caplog.text  # the log was captured
    assert not any(TOKEN in text for text in seen)
    with pytest.raises(TypeError):
        pickle.dumps(token)


async def test_a_refused_token_is_a_clear_error_without_the_token(
    fp2: Recording,
    expected: list[MessageReceived],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = tmp_path / "token"
    wrong.write_text(TOKEN + "-wrong\n")
    hub = ReplayHub.from_recording(fp2, Faults(require_token=TOKEN))
    async with serve_signalr(hub) as url:
        settings = SignalRSettings(url=url, topics=topics_of(expected), token_file=wrong)
        client = LiveClient(settings, SESSION, discard)
        with trio.fail_after(5), pytest.raises(SignalRAuthError) as refused:
            await client.run()
        anonymous = LiveClient(SignalRSettings(url=url, topics=("TimingData",)), SESSION, discard)
        with trio.fail_after(5), pytest.raises(SignalRAuthError) as missing:
            await anonymous.run()

    error = refused.value
    assert error.status == 401
    assert str(error) == (
        f"POST negotiate refused with HTTP 401: the bearer token from {wrong} "
        "was not accepted (expired?): renew it"
    )
    formatted = "".join(traceback.format_exception(error))
    assert not any(TOKEN in text for text in (formatted, repr(error), caplog.text))
    assert "configure token_file or token_env" in str(missing.value)
    # OPTIONS' status is ignored (its cookie taken, if any); the POST's refusal ends it.
    assert [(h.method, h.status) for h in hub.http] == [("OPTIONS", 401), ("POST", 401)] * 2


def test_token_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "token"
    file.write_text(f"Bearer {TOKEN}\n")
    token = load_token(SignalRSettings(token_file=file))
    assert token is not None
    assert token.reveal() == TOKEN
    assert token.scrub(f"x {TOKEN} y") == "x <redacted> y"
    assert load_token(SignalRSettings()) is None
    with pytest.raises(TokenError, match="no such file"):
        load_token(SignalRSettings(token_file=tmp_path / "missing"))
    monkeypatch.delenv(VARIABLE, raising=False)
    with pytest.raises(TokenError, match=r"F1_TEST_TOKEN .* is not set"):
        load_token(SignalRSettings(token_env=VARIABLE))
    monkeypatch.setenv(VARIABLE, f"{TOKEN}\nX-Injected: 1")
    with pytest.raises(TokenError, match="characters an HTTP header cannot carry") as bad:
        load_token(SignalRSettings(token_env=VARIABLE))
    assert TOKEN not in str(bad.value)
    with pytest.raises(ValueError, match="not both"):
        SignalRSettings(token_file=file, token_env=VARIABLE)


def test_websocket_url_quotes_the_connection_token() -> None:
    base = "https://livetiming.formula1.com/signalrcore"
    assert websocket_url(base, "a+b/c=") == (
        "wss://livetiming.formula1.com/signalrcore?id=a%2Bb%2Fc%3D"
    )
