"""``beacon -v``/``-vv``/``--log-level``: log lines on stderr, and never a token in them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from beacon_orchestrator.cli._shell import log_level, logging_to

from ..adapters.fake_beacon import LiveServer, serve
from .support import invoke, write_json

CANARY = "sk-canary-5f0e9c1d-do-not-log"
LOG_LINE = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.]+: "


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with serve() as live:
        yield live


def _job(tmp_path: Path) -> Path:
    # Prompts choose what the fake router does: answer, fail with a 400 that quotes the
    # Authorization header back, fail transiently once and then answer.
    return write_json(
        tmp_path / "job.json",
        {
            "id": "logged",
            "questions": [
                {"id": "ok", "prompt": "ok:fine"},
                {"id": "echo", "prompt": "echo-auth"},
                {"id": "flaky", "prompt": "flaky:1:later"},
            ],
            "models": [{"id": "llama3.2-1b", "regions": ["us-east"]}],
        },
    )


def _run(server: LiveServer, tmp_path: Path, *flags: str) -> tuple[str, str, Path]:
    db = tmp_path / "b.db"
    router = ["--executor", "hybrid-router", "--router-url", f"{server.base_url}/router"]
    result = invoke(
        [*flags, "run", str(_job(tmp_path)), "--store", str(db), *router, "--progress", "plain"],
        env={"BEACON_ROUTER_API_KEY": CANARY},
    )
    assert result.exit_code in (0, 1), result.output
    return result.stdout, result.stderr, db


def test_at_debug_requests_are_logged_and_no_line_carries_the_token(
    server: LiveServer, tmp_path: Path
) -> None:
    stdout, stderr, db = _run(server, tmp_path, "-vv")
    # The token did reach the server (so the test would see it if it leaked)...
    assert any(seen.authorization == f"Bearer {CANARY}" for seen in server.log.snapshot())
    # ... and the server quoted it back in a 400, which the executor logs at DEBUG.
    debug = [line for line in stderr.splitlines() if " DEBUG " in line]
    assert any("beacon_orchestrator.adapters" in line for line in debug), stderr
    assert any(line.split(" ", 4)[3] == "httpx:" for line in stderr.splitlines())
    assert CANARY not in stdout
    assert CANARY not in stderr
    assert CANARY.encode() not in db.read_bytes()


def test_log_level_option_is_the_same_as_vv(server: LiveServer, tmp_path: Path) -> None:
    _, stderr, _ = _run(server, tmp_path, "--log-level", "debug")
    assert " DEBUG beacon_orchestrator.adapters" in stderr
    assert CANARY not in stderr


def test_one_v_is_info_without_http_request_lines(server: LiveServer, tmp_path: Path) -> None:
    _, stderr, _ = _run(server, tmp_path, "-v")
    assert " DEBUG " not in stderr
    assert "httpx" not in stderr  # its INFO line per request stays below WARNING
    assert CANARY not in stderr


def test_without_v_there_are_no_log_lines(server: LiveServer, tmp_path: Path) -> None:
    _, stderr, _ = _run(server, tmp_path)
    assert " DEBUG " not in stderr
    assert " INFO " not in stderr
    assert "Running job logged" in stderr  # progress is not logging


@pytest.mark.parametrize(
    ("verbose", "level", "expected"),
    [
        (0, None, logging.WARNING),
        (1, None, logging.INFO),
        (2, None, logging.DEBUG),
        (5, None, logging.DEBUG),
        (2, "error", logging.ERROR),  # --log-level wins over -v
        (0, "INFO", logging.INFO),
    ],
)
def test_log_level_from_v_and_log_level(verbose: int, level: str | None, expected: int) -> None:
    assert log_level(verbose, level) == expected


def test_logging_is_restored_after_a_command_and_scrubs_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    library = logging.getLogger("beacon_orchestrator")
    httpx_logger = logging.getLogger("httpx")
    before = (library.level, library.propagate, list(library.handlers), httpx_logger.level)
    console = Console(record=True, width=200)
    with logging_to(console, logging.DEBUG):
        assert library.level == logging.DEBUG
        assert httpx_logger.level == logging.DEBUG
        logging.getLogger("beacon_orchestrator.x").debug("key is %s", CANARY)
        logging.getLogger("httpx").info("GET /?token=%s", CANARY)
    after = (library.level, library.propagate, list(library.handlers), httpx_logger.level)
    assert after == before
    text = console.export_text()
    assert "DEBUG beacon_orchestrator.x: key is ***" in text
    assert "INFO httpx: GET /?token=***" in text
    assert CANARY not in text


def test_http_loggers_stay_at_warning_below_debug() -> None:
    console = Console(record=True, width=200)
    with logging_to(console, logging.INFO):
        assert logging.getLogger("httpcore").level == logging.WARNING
        logging.getLogger("httpx").info("a request")
        logging.getLogger("httpx").warning("a warning")
        logging.getLogger("beacon_orchestrator.y").info("a library line")
    text = console.export_text()
    assert "a request" not in text
    assert "WARNING httpx: a warning" in text
    assert "INFO beacon_orchestrator.y: a library line" in text


def test_log_lines_have_the_plain_format(server: LiveServer, tmp_path: Path) -> None:
    import re

    _, stderr, _ = _run(server, tmp_path, "-vv")
    logged = [line for line in stderr.splitlines() if re.match(LOG_LINE, line)]
    assert len(logged) >= 3
