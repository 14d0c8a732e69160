"""Every code block of README.md and docs/**/*.md runs, the way a reader following the page would.

How a page is run:

- Its Python blocks run in order in one namespace, like one interactive session, in a fresh
  temporary working directory that is also first on ``sys.path`` (so ``beacon.db``, job files and
  modules the page writes stay there and can be imported by later blocks).
- Console blocks (``console``, ``bash``, ``shell``, ``sh``) run each command in that directory:
  ``beacon ...`` through the real command (click's ``CliRunner``), ``python``/``pytest`` in a
  subprocess, ``export NAME=VALUE`` for the commands after it. Every command must exit 0 unless
  the block says otherwise. In a ``console`` block, lines after a ``$ command`` are its expected
  output (a line ``...`` stands for any number of lines).
- A block with a title (```` ```yaml title="job.yaml" ````) is a file the page tells the reader to
  create: it is written to the directory before the next block runs, and not run itself (a
  Python file is compiled). YAML and JSON blocks are job documents, loaded with
  :func:`beacon_orchestrator.load_jobspec` to prove they are valid.
- ``text`` and ``markdown`` blocks are shown, never run; a ``text`` block that starts with a
  ``$ `` command is an error (make it a ``console`` block so it runs). Any other language, or a
  block without one, is an error: a new page cannot slip code past this harness.

A block can be preceded (blank lines allowed in between) by one marker, an HTML comment that
neither GitHub nor the site shows, with directives separated by ``;``:

``<!-- test: async -->``
    The block awaits at top level, as a notebook cell does: it runs on one event loop kept for
    the whole page, once on asyncio and once on trio. ``async asyncio`` or ``async trio`` when
    it needs that backend.
``<!-- test: skip: REASON -->``
    The block cannot run here (it installs packages, needs a GPU...). It is reported as a
    skipped test with its reason (``pytest -ra`` lists them), never silently.
``<!-- test: serve router=URL openai=URL modal/REGION=URL generate=URL -->``
    The block talks to those servers: the test serves a loopback imitation of Beacon's hybrid
    router, an OpenAI-compatible server or a region's Modal endpoint
    (``tests/adapters/fake_beacon.py``), or of the ``POST /generate`` API of the how-to "write
    an executor", and puts its address in the block in place of ``URL``.
``<!-- test: exit N -->``
    Every command of the console block must exit with ``N``.
``<!-- test: data -->``
    A YAML or JSON block that is not a job document: it only has to parse.

One adjustment is made to what the reader types: the ``demo`` executor is paced at
``--speed 1000`` (whatever the page says), so a ten-second demo takes milliseconds; the pace
changes its timing only, not what it does. Commands run with a clean environment: the
variables this project's own test runs set (``HYPOTHESIS_PROFILE``, ``BEACON_*``, pytest's) are
not passed on, since the reader's shell does not have them.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio.from_thread
import pytest
import yaml
from attrs import define, field, frozen
from click.testing import CliRunner

import beacon_orchestrator
from beacon_orchestrator import load_jobspec
from beacon_orchestrator.cli import cli

from .adapters.fake_beacon import LiveServer, serve

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

PYTHON = {"python", "py"}
CONSOLE = {"console", "bash", "shell", "sh"}
DATA = {"yaml", "yml", "json"}
SHOWN = {"text", "markdown", "md"}
BACKENDS = ("asyncio", "trio")
DEMO_SPEED = "1000"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*test:(?P<directives>.*?)-->\s*$")
_TITLE = re.compile(r"""title=(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')""")
_SERVICE = re.compile(r"^(?P<kind>router|openai|modal/[a-z0-9-]+|generate)=(?P<url>\S+)$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# Set by this project's own test runs, never by a reader's shell.
_NOT_PASSED_ON = ("HYPOTHESIS_PROFILE", "BEACON_", "PYTEST_", "COV_CORE_", "COVERAGE_")


class HarnessError(Exception):
    """A block the harness does not know how to run, or a marker it does not understand."""


@frozen
class Block:
    """One fenced code block of a page, with the marker before it."""

    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    title: str | None
    code: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{_shown_path(self.page)}:{self.line}"


@frozen
class Plan:
    """What the harness does with a block, decided from its language and marker."""

    block: Block
    kind: str  # "python", "console", "data", "file", "shown" or "skip"
    skip_reason: str | None = None
    backends: tuple[str, ...] = ()  # for async Python blocks
    services: tuple[tuple[str, str], ...] = ()  # (kind, URL in the block)
    exit_code: int = 0
    job_document: bool = True


def _shown_path(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def parse_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    marker: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        found = _MARKER.match(line)
        fence = _FENCE.match(line)
        if found:
            marker = found["directives"].strip()
        elif fence:
            i = _read_block(page, lines, i, fence, marker, blocks)
            marker = None
        elif line.strip():
            marker = None  # a marker applies only to the block right after it
        i += 1
    return blocks


def _read_block(
    page: Path,
    lines: list[str],
    start: int,
    fence: re.Match[str],
    marker: str | None,
    out: list[Block],
) -> int:
    """Append the block opening at ``start``; return the index of its closing fence."""
    indent, mark, info = fence["indent"], fence["fence"], fence["info"].strip()
    closing = re.compile(rf"^{re.escape(indent)}{re.escape(mark[0])}{{{len(mark)},}}\s*$")
    end = start + 1
    while end < len(lines) and not closing.match(lines[end]):
        end += 1
    if end == len(lines):
        raise HarnessError(f"{_shown_path(page)}:{start + 1}: unclosed code block")
    body = [
        line[len(indent) :] if line.startswith(indent) else line for line in lines[start + 1 : end]
    ]
    lang = info.split()[0].lstrip(".{").lower() if info else ""
    title = _TITLE.search(info)
    out.append(
        Block(
            page=page,
            line=start + 1,
            lang=lang,
            title=None if title is None else title["dq"] or title["sq"],
            code="\n".join(body) + "\n",
            marker=marker,
        )
    )
    return end


def plan(block: Block) -> Plan:
    """Decide how to run ``block``; raise :class:`HarnessError` if the harness cannot."""
    directives = _directives(block)
    if "skip" in directives:
        return Plan(block, "skip", skip_reason=directives["skip"])
    kind = _kind(block)
    allowed = {
        "python": {"async", "serve"},
        "console": {"serve", "exit"},
        "data": {"data"},
        "file": {"data", "serve"},
        "shown": set(),
    }[kind]
    unexpected = directives.keys() - allowed
    if unexpected:
        raise HarnessError(f"{block.where}: {', '.join(sorted(unexpected))} means nothing here")
    if kind == "console":
        for command in commands(block):
            _check_command(block, command.argv)
    return Plan(
        block,
        kind,
        backends=_backends(block, directives.get("async")),
        services=_services(block, directives.get("serve")),
        exit_code=_exit_code(block, directives.get("exit")),
        job_document="data" not in directives,
    )


def _kind(block: Block) -> str:
    if block.lang in SHOWN:
        if block.lang == "text" and block.code.lstrip().startswith("$ "):
            raise HarnessError(f"{block.where}: a command in a text block; make it `console`")
        return "shown"
    if block.title is not None and block.lang in PYTHON | DATA:
        return "file"
    if block.lang in PYTHON:
        return "python"
    if block.lang in CONSOLE:
        return "console"
    if block.lang in DATA:
        return "data"
    raise HarnessError(
        f"{block.where}: the docs test does not know how to run a {block.lang or 'bare'!r} block;"
        " use a known language or mark it <!-- test: skip: REASON -->"
    )


def _directives(block: Block) -> dict[str, str]:
    if block.marker is None:
        return {}
    text = block.marker
    if text.startswith("skip:"):
        reason = text.removeprefix("skip:").strip()
        if not reason:
            raise HarnessError(f"{block.where}: a skip needs its reason")
        return {"skip": reason}
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, arg = part.partition(" ")
        if name not in {"async", "serve", "exit", "data"}:
            raise HarnessError(f"{block.where}: unknown test directive {name!r}")
        out[name] = arg.strip()
    return out


def _backends(block: Block, arg: str | None) -> tuple[str, ...]:
    if arg is None:
        return ()
    if not arg:
        return BACKENDS
    if arg not in BACKENDS:
        raise HarnessError(f"{block.where}: async {arg!r}: the backends are {BACKENDS}")
    return (arg,)


def _services(block: Block, arg: str | None) -> tuple[tuple[str, str], ...]:
    if arg is None:
        return ()
    out: list[tuple[str, str]] = []
    for word in arg.split():
        found = _SERVICE.match(word)
        if found is None:
            raise HarnessError(f"{block.where}: serve {word!r}: expected KIND=URL")
        if found["url"] not in block.code:
            raise HarnessError(f"{block.where}: {found['url']} does not appear in the block")
        out.append((found["kind"], found["url"]))
    if not out:
        raise HarnessError(f"{block.where}: serve what?")
    return tuple(out)


def _exit_code(block: Block, arg: str | None) -> int:
    if arg is None:
        return 0
    if not arg.isdigit():
        raise HarnessError(f"{block.where}: exit {arg!r}: expected a number")
    return int(arg)


# -- console blocks ---------------------------------------------------------------------------


@frozen
class Command:
    """One command line of a console block, with the output the page shows for it."""

    argv: tuple[str, ...]
    stdout_to: str | None
    expected: tuple[str, ...]


def commands(block: Block) -> list[Command]:
    """The commands of a console block, continuation lines joined."""
    prompted = block.lang == "console"
    out: list[Command] = []
    logical: list[str] = []
    for raw in block.code.splitlines():
        if logical:  # inside a command continued with a backslash
            logical.append(raw)
        elif prompted and not raw.startswith("$ "):
            if not out:
                raise HarnessError(f"{block.where}: output before the first `$ ` command")
            last = out[-1]
            out[-1] = Command(last.argv, last.stdout_to, (*last.expected, raw))
            continue
        else:
            logical = [raw.removeprefix("$ ") if prompted else raw]
        if logical[-1].endswith("\\"):
            logical[-1] = logical[-1][:-1]
            continue
        argv = shlex.split(" ".join(logical), comments=True)
        logical = []
        if argv:
            out.append(_redirected(block, argv))
    return out


def _redirected(block: Block, argv: list[str]) -> Command:
    if ">" in argv:
        at = argv.index(">")
        if at != len(argv) - 2:
            raise HarnessError(f"{block.where}: only `command > FILE` redirection is supported")
        return Command(tuple(argv[:at]), argv[-1], ())
    return Command(tuple(argv), None, ())


def split_assignments(argv: tuple[str, ...]) -> tuple[dict[str, str], tuple[str, ...]]:
    """``NAME=VALUE command ...``: the variables set for this command, and the command."""
    env: dict[str, str] = {}
    rest = list(argv)
    while len(rest) > 1 and _ASSIGNMENT.match(rest[0]):
        name, _, value = rest.pop(0).partition("=")
        env[name] = value
    return env, tuple(rest)


def _check_command(block: Block, command: tuple[str, ...]) -> None:
    _, argv = split_assignments(command)
    name = argv[0]
    # Shell operators would reach the command as arguments: only plain commands run here.
    plain = not {"&&", "||", "|", ";", "<", ">>", "2>"} & set(argv)
    exporting = name == "export" and len(argv) == 2 and "=" in argv[1]
    pytest_run = name == "pytest" or argv[1:3] == ("-m", "pytest")
    script_run = len(argv) > 1 and argv[1].endswith(".py")
    python_run = name in {"python", "python3", "pytest"} and (pytest_run or script_run)
    if plain and (name == "beacon" or exporting or python_run):
        return
    raise HarnessError(
        f"{block.where}: the docs test cannot run `{' '.join(argv)}`; "
        "mark the block <!-- test: skip: REASON -->"
    )


def demo_paced(args: list[str]) -> list[str]:
    """``args`` of a ``beacon`` command, with the demo executor at ``DEMO_SPEED``."""
    uses_demo = args[:1] == ["demo"] or any(
        a == "--executor=demo" or (a == "--executor" and b == "demo")
        for a, b in zip(args, [*args[1:], ""], strict=True)
    )
    if not uses_demo:
        return args
    out: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
        elif arg == "--speed":
            skip_next = True
        elif not arg.startswith("--speed="):
            out.append(arg)
    return [*out, "--speed", DEMO_SPEED]


def matches(expected: tuple[str, ...], output: str) -> bool:
    """Whether ``output`` is what the page shows (``...`` lines match any lines)."""
    pattern = "".join(
        r"(?:.*\n)*?" if line.strip() == "..." else re.escape(line.rstrip()) + r"[ \t]*\n"
        for line in expected
    )
    text = "\n".join(line.rstrip() for line in output.strip("\n").splitlines()) + "\n"
    return re.fullmatch(pattern, text) is not None


# -- running a page ---------------------------------------------------------------------------


@define
class PageRun:
    """The state a reader's session has while following one page."""

    cwd: Path
    backend: str | None
    bases: dict[str, str]  # base URL of each loopback server: "beacon", "generate"
    portal: anyio.from_thread.BlockingPortal | None = None
    namespace: dict[str, Any] = field(factory=lambda: {"__name__": "__main__"})
    env: dict[str, str] = field(factory=dict)

    def serve(self, plan: Plan, text: str) -> str:
        """``text`` with each URL of the plan's services replaced by the loopback server's."""
        for kind, url in plan.services:
            if kind == "generate":
                local = self.bases["generate"]
            elif kind.startswith("modal/"):
                local = f"{self.bases['beacon']}/modal/{kind.removeprefix('modal/')}/inference"
            else:
                local = f"{self.bases['beacon']}/{kind}"
            text = text.replace(url, local)
        return text

    def run(self, plan: Plan) -> None:
        if plan.kind == "python":
            self.python(plan)
        elif plan.kind == "console":
            for command in commands(plan.block):
                self.console(plan, command)
        elif plan.kind in {"data", "file"}:
            self.data(plan)

    def python(self, plan: Plan) -> None:
        block = plan.block
        # Padding keeps the page's line numbers, so a traceback points into the page itself.
        source = "\n" * block.line + self.serve(plan, block.code)
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if plan.backends else 0
        code = compile(source, str(block.page), "exec", flags=flags, dont_inherit=True)
        if not plan.backends:
            exec(code, self.namespace)
            return
        if self.portal is None:
            raise AssertionError(f"{block.where}: an async block on a page run without a loop")
        self.portal.call(self._await, code)

    async def _await(self, code: Any) -> None:
        result = eval(code, self.namespace)
        if inspect.iscoroutine(result):
            await result

    def console(self, plan: Plan, command: Command) -> None:
        env, words = split_assignments(command.argv)
        argv = [self.serve(plan, arg) for arg in words]
        if argv[0] == "export":
            name, _, value = argv[1].partition("=")
            self.env[name] = value
            return
        if argv[0] == "beacon":
            code, output = self.beacon(argv[1:], env, redirected=command.stdout_to is not None)
        else:
            code, output = self.subprocess(argv, env)
        where = f"{plan.block.where}: `{' '.join(argv)}`"
        assert code == plan.exit_code, f"{where} exited {code}, not {plan.exit_code}:\n{output}"
        if command.stdout_to is not None:
            (self.cwd / command.stdout_to).write_text(output, encoding="utf-8")
        if command.expected:
            shown = "\n".join(command.expected)
            assert matches(command.expected, output), f"{where} printed\n{output}\nnot\n{shown}"

    def beacon(
        self, args: list[str], env: dict[str, str], *, redirected: bool = False
    ) -> tuple[int, str]:
        runner = CliRunner()
        # CliRunner overlays this on os.environ; None removes a variable the reader lacks.
        overlay: dict[str, str | None] = {
            n: None for n in os.environ if n.startswith(_NOT_PASSED_ON)
        }
        overlay.update({"COLUMNS": "100", **self.env, **env})
        result = runner.invoke(cli, demo_paced(args), prog_name="beacon", env=overlay)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        # With a redirection the reader's file gets standard output only; otherwise they see both.
        return result.exit_code, result.stdout if redirected else result.output

    def subprocess(self, argv: list[str], env: dict[str, str]) -> tuple[int, str]:
        if argv[0] == "pytest":
            argv = ["python", "-m", *argv]
        # This checkout's package first: the environment may have another one installed.
        paths = [str(ROOT / "src"), str(self.cwd), os.environ.get("PYTHONPATH", "")]
        inherited = {n: v for n, v in os.environ.items() if not n.startswith(_NOT_PASSED_ON)}
        env = {**inherited, **self.env, **env, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
        done = subprocess.run(
            [sys.executable, *argv[1:]],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr

    def data(self, plan: Plan) -> None:
        block = plan.block
        text = self.serve(plan, block.code)
        path = self.cwd / (block.title or f"block-{block.line}.{block.lang}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if block.lang in PYTHON:
            compile(text, str(path), "exec", dont_inherit=True)
        elif not plan.job_document:
            json.loads(text) if block.lang == "json" else yaml.safe_load(text)
        else:
            load_jobspec(path)
        if block.title is None:
            path.unlink()  # an untitled document is shown, not a file the reader creates


def plans_of(page: Path) -> list[Plan]:
    return [plan(block) for block in parse_blocks(page)]


def _page_params() -> Iterator[Any]:
    for page in PAGES:
        try:
            plans = plans_of(page)
        except HarnessError:
            plans = []  # test_every_block_is_one_the_harness_runs names the problem
        runnable = [p for p in plans if p.kind not in {"skip", "shown"}]
        if not runnable:
            continue
        name = str(page.relative_to(ROOT))
        async_blocks = [p.backends for p in plans if p.backends]
        if not async_blocks:
            yield pytest.param(page, None, id=name)
            continue
        backends = [b for b in BACKENDS if all(b in bs for bs in async_blocks)]
        if not backends:
            raise HarnessError(f"{name}: its async blocks need different backends")
        for backend in backends:
            yield pytest.param(page, backend, id=f"{name}-{backend}")


def _skip_params() -> Iterator[Any]:
    for page in PAGES:
        try:
            plans = plans_of(page)
        except HarnessError:
            continue
        for p in plans:
            if p.kind == "skip":
                yield pytest.param(p.block.where, p.skip_reason, id=p.block.where)


@pytest.fixture(scope="module")
def beacon_services() -> Iterator[LiveServer]:
    """Beacon's router, Modal endpoints and an OpenAI-compatible server, on loopback."""
    with serve() as server:
        yield server


class _GenerateHandler(BaseHTTPRequestHandler):
    """``POST /generate``: the hypothetical model server of the how-to "write an executor"."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/generate":
            self.send_error(404)
            return
        answer = json.dumps({"text": f"echo: {body['prompt']}", "usage": {"tokens": 2}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, format: str, *args: Any) -> None:
        return  # keep the test's output to what fails


@pytest.fixture(scope="module")
def generate_service() -> Iterator[str]:
    """The ``POST /generate`` server on loopback; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GenerateHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def _isolated_modules(directory: Path) -> Iterator[None]:
    """Forget, afterwards, every module the page imported from its own directory."""
    try:
        yield
    finally:
        for name, module in list(sys.modules.items()):
            origin = getattr(module, "__file__", None) or ""
            if origin.startswith(str(directory)):
                del sys.modules[name]


@pytest.mark.slow
@pytest.mark.parametrize(("page", "backend"), list(_page_params()))
def test_page(
    page: Path,
    backend: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """Every runnable block of the page runs as the page says, in order, in one session."""
    plans = plans_of(page)
    kinds = {kind for p in plans for kind, _ in p.services}
    bases: dict[str, str] = {}
    if kinds - {"generate"}:
        bases["beacon"] = request.getfixturevalue("beacon_services").base_url
    if "generate" in kinds:
        bases["generate"] = request.getfixturevalue("generate_service")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("BEACON_STORE", "BEACON_EXECUTOR", "BEACON_ROUTER_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    session = PageRun(tmp_path, backend, bases)
    with ExitStack() as stack:
        stack.enter_context(_isolated_modules(tmp_path))
        if backend is not None:
            session.portal = stack.enter_context(
                anyio.from_thread.start_blocking_portal(backend=backend)
            )
        for p in plans:
            session.run(p)


@pytest.mark.parametrize(("where", "reason"), list(_skip_params()))
def test_block_not_runnable_says_why(where: str, reason: str) -> None:
    """A block the harness does not run says why; the test id lists the page, line and reason.

    These are not pytest skips: CI skips nothing. What they do (install packages, run nox or the
    benchmarks) CI does itself, in ``.ci/run`` and ``nox -s dist``.
    """
    assert ":" in where
    assert len(reason.split()) >= 3, f"{where}: give a reason a reader understands"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_block_is_one_the_harness_runs(page: Path) -> None:
    """No page has a code block the harness cannot run, nor a marker it does not understand."""
    for p in plans_of(page):
        assert p.kind in {"python", "console", "data", "file", "shown", "skip"}


def test_the_package_docstring_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """help(beacon_orchestrator) shows a complete example: it runs and completes its job."""
    doc = beacon_orchestrator.__doc__ or ""
    assert "docs/tutorial.md" in doc
    assert "docs/how-to/" in doc
    assert "docs/reference/" in doc
    lines = doc.split("::\n", 1)[1].splitlines()
    # The literal block: the indented lines (and blank ones) after the "::".
    block = itertools.takewhile(lambda line: not line or line.startswith("    "), lines)
    example = textwrap.dedent("\n".join(block))
    exec(compile(example, "beacon_orchestrator.__doc__", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out.startswith("completed 2 of 2 executions succeeded")


# -- the harness itself: what would let a broken page through --------------------------------


def _page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent(text), encoding="utf-8")
    return page


def test_a_block_in_a_language_the_harness_cannot_run_fails(tmp_path: Path) -> None:
    for fence in ("```ruby", "```", "~~~toml"):
        page = _page(tmp_path, f"Intro.\n\n{fence}\nputs 1\n{fence[:3]}\n")
        with pytest.raises(HarnessError, match="does not know how to run"):
            plans_of(page)


def test_a_command_hidden_in_a_text_block_fails(tmp_path: Path) -> None:
    page = _page(tmp_path, "```text\n$ beacon run job.yaml\nError: ...\n```\n")
    with pytest.raises(HarnessError, match="make it `console`"):
        plans_of(page)


def test_a_command_the_harness_cannot_run_must_be_marked(tmp_path: Path) -> None:
    for command in (
        "python3 -m pip install foo",
        "git clone x",
        "nox -s tests",
        "beacon x && rm y",
    ):
        page = _page(tmp_path, f"```bash\n{command}\n```\n")
        with pytest.raises(HarnessError, match="mark the block"):
            plans_of(page)
    marked = _page(
        tmp_path, "<!-- test: skip: installs packages -->\n```bash\npip install x\n```\n"
    )
    (only,) = plans_of(marked)
    assert (only.kind, only.skip_reason) == ("skip", "installs packages")


def test_markers_apply_to_the_next_block_only_and_are_checked(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        """\
        <!-- test: async trio; serve router=http://router:8000 -->

        ```python
        x = HybridRouterExecutor("http://router:8000")
        ```

        <!-- test: async -->
        A paragraph between a marker and its block cancels it.

        ```python
        y = 1
        ```
        """,
    )
    first, second = plans_of(page)
    assert first.backends == ("trio",)
    assert first.services == (("router", "http://router:8000"),)
    assert second.backends == ()
    for marker, problem in [
        ("skip:", "needs its reason"),
        ("asink", "unknown test directive"),
        ("async curio", "the backends are"),
        ("serve router=http://elsewhere", "does not appear"),
        ("exit 1", "means nothing here"),
    ]:
        bad = _page(tmp_path, f"<!-- test: {marker} -->\n```python\nx = 1\n```\n")
        with pytest.raises(HarnessError, match=problem):
            plans_of(bad)


def test_console_commands_are_parsed_as_a_shell_would(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        """\
        ```console
        $ beacon run job.yaml \\
          --executor demo   # a comment
        Error: one
        ...
        $ beacon export job > job.jsonl
        $ HYPOTHESIS_PROFILE=quick python -m pytest test_x.py
        ```
        """,
    )
    (block,) = parse_blocks(page)
    run, export, pytest_run = commands(block)
    assert run == Command(
        ("beacon", "run", "job.yaml", "--executor", "demo"), None, ("Error: one", "...")
    )
    assert export == Command(("beacon", "export", "job"), "job.jsonl", ())
    assert split_assignments(pytest_run.argv) == (
        {"HYPOTHESIS_PROFILE": "quick"},
        ("python", "-m", "pytest", "test_x.py"),
    )


def test_expected_output_must_match_with_ellipses_for_any_lines() -> None:
    assert matches(("Error: 2 problems", "...", "  - last"), "Error: 2 problems\na\nb\n  - last\n")
    assert matches(("...",), "")
    assert not matches(("Error: 2 problems",), "Error: 3 problems\n")
    assert not matches(("a",), "a\nb\n")  # an unexpected extra line


def test_the_demo_executor_is_paced_fast_whatever_the_page_says() -> None:
    assert demo_paced(["demo"]) == ["demo", "--speed", DEMO_SPEED]
    assert demo_paced(["run", "j.yaml", "--executor", "demo", "--speed", "10"]) == [
        "run",
        "j.yaml",
        "--executor",
        "demo",
        "--speed",
        DEMO_SPEED,
    ]
    real = ["run", "j.yaml", "--executor", "openai", "--speed", "10"]
    assert demo_paced(real) == real


def test_a_failing_block_points_at_its_line_in_the_page(tmp_path: Path) -> None:
    page = _page(tmp_path, "Text.\n\n```python\nx = 1\nprint(undefined)\n```\n")
    (p,) = plans_of(page)
    with pytest.raises(NameError) as info:
        PageRun(tmp_path, None, {}).run(p)
    frame = info.traceback[-1]
    assert (str(frame.path), frame.lineno + 1) == (str(page), 5)


def test_a_command_that_exits_otherwise_than_marked_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    command = "$ beacon run missing.yaml --executor demo\n"  # exits 2: no such file
    unmarked = _page(tmp_path, f"```console\n{command}```\n")
    with pytest.raises(AssertionError, match="exited 2, not 0"):
        PageRun(tmp_path, None, {}).run(*plans_of(unmarked))
    marked = _page(tmp_path, f"<!-- test: exit 2 -->\n```console\n{command}```\n")
    PageRun(tmp_path, None, {}).run(*plans_of(marked))
