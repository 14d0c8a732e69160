"""Developer sessions: ``nox -s tests lint typing docs bench dist``.

Sessions use uv to build their virtualenvs when it is installed (much faster on CI) and fall
back to virtualenv otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typing", "docs"]

PYTHON = "3.11"


# The PostgreSQL scenarios spend their time waiting (on worker processes, leases, a server
# restarting), not on the CPU: they run in a second pytest process beside the rest of the suite.
# The restart scenarios, whose self-fencing margins are the tightest, run alone afterwards.
POSTGRES_TESTS = "tests/postgres"
RESTART_TESTS = "tests/postgres/test_restart.py"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (asyncio and trio) under coverage.

    With arguments, ``pytest`` gets them as they are. Without, the PostgreSQL tests run in a
    second process beside the others (about a third less wall time on two cores), then the
    restart scenarios alone; every process writes its own coverage data, combined at the end.
    """
    session.install("-e", ".[test]")
    env = {"HYPOTHESIS_PROFILE": os.environ.get("HYPOTHESIS_PROFILE", "dev")}
    session.run("coverage", "erase")
    pytest = ("coverage", "run", "--parallel-mode", "-m", "pytest")
    if session.posargs:
        session.run(*pytest, *session.posargs, env=env)
    else:
        log = Path(session.create_tmp()) / "postgres-tests.log"
        beside = [*pytest, POSTGRES_TESTS, f"--ignore={RESTART_TESTS}"]
        path = f"{session.bin}{os.pathsep}{os.environ.get('PATH', '')}"
        with log.open("w") as out:
            postgres = subprocess.Popen(
                beside, env={**os.environ, **env, "PATH": path}, stdout=out, stderr=out
            )
            try:
                session.run(*pytest, f"--ignore={POSTGRES_TESTS}", env=env)
            finally:
                code = postgres.wait()
                session.log(f"{POSTGRES_TESTS} (beside the rest):\n{log.read_text()}")
        if code != 0:
            session.error(f"{POSTGRES_TESTS} failed (exit {code})")
        session.run(*pytest, RESTART_TESTS, env=env)
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report", "--fail-under=85")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typing(session: nox.Session) -> None:
    """Mypy --strict over the package, tests and benchmarks."""
    session.install("-e", ".[test]", "mypy>=1.11", "types-PyYAML")
    session.run("mypy")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run the benchmark suite; ``nox -s bench -- --quick`` is the CI-sized run."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHON)
def dist(session: nox.Session) -> None:
    """Build the sdist and the wheel, and check each works on its own (a few minutes).

    Each is installed into a fresh virtualenv that runs ``beacon demo``; the README's clone
    command (``pip install -e '.[cli]' && beacon demo``) runs in the unpacked sdist; the sdist
    must hold every file git tracks (but ``.ci/``); and the tests that read files beside the
    package run from the unpacked sdist against the package installed from it
    (``nox -s dist -- tests`` runs the whole suite there).
    """
    # uv (installed beside nox, as the README says) takes seconds where pip takes minutes.
    uv = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    tmp = Path(session.create_tmp()).resolve()
    shutil.rmtree(tmp)
    out = tmp / "dist"
    # Both tools build the wheel from the sdist, so the sdist must be complete enough for that.
    if uv:
        session.run(uv, "build", "-q", "--out-dir", str(out), ".", external=True)
    else:
        session.install("build")
        session.run("python", "-m", "build", "--outdir", str(out), ".")
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp, filter="data")
    unpacked = tmp / sdist.name.removesuffix(".tar.gz")

    def fresh_venv(name: str, *requirement: str) -> Path:
        venv = tmp / name
        python = str(venv / "bin" / "python")
        if uv:
            base = str(Path(session.bin) / "python")
            session.run(uv, "venv", "-q", "--python", base, str(venv), external=True)
            session.run(uv, "pip", "install", "-q", "--python", python, *requirement, external=True)
        else:
            session.run("python", "-m", "venv", str(venv))
            session.run(python, "-m", "pip", "install", "-q", *requirement, external=True)
        return venv / "bin"

    def demo(bin_dir: Path, cwd: Path) -> None:
        # --speed 100: the demo's 64 executions in about a tenth of a second.
        with session.chdir(cwd):
            session.run(str(bin_dir / "beacon"), "demo", "--speed", "100", external=True)

    wheel_bin = fresh_venv("venv-wheel", f"{wheel}[cli]")
    demo(wheel_bin, tmp)
    clone_bin = fresh_venv("venv-clone", "-e", f"{unpacked}[cli]")
    demo(clone_bin, unpacked)
    sdist_bin = fresh_venv("venv-sdist", f"{sdist}[test]")
    demo(sdist_bin, tmp)
    for left in unpacked.glob("beacon.db*"):  # the demo's store: not part of the sdist
        left.unlink()
    _check_sdist_ships_the_tree(session, unpacked)
    # The whole suite ran in `nox -s tests`; from the unpacked sdist run the tests that read
    # files outside the package (the docs, the README, the examples, the stored test data)
    # against the package installed from the sdist.
    env = {"HYPOTHESIS_PROFILE": os.environ.get("HYPOTHESIS_PROFILE", "dev")}
    with session.chdir(unpacked):
        session.run(
            str(sdist_bin / "python"),
            "-m",
            "pytest",
            *(session.posargs or SDIST_TESTS),
            env=env,
            external=True,
        )


# Tests that read files beside the package: README and docs/, examples/, the stored store of
# the previous release, the spec files, the refusal corpus.
SDIST_TESTS = (
    "tests/test_docs.py",
    "tests/test_examples.py",
    "tests/test_public_api.py",
    "tests/test_samples.py",
    "tests/test_spec_files.py",
    "tests/analysis/test_refusal_corpus.py",
)


def _check_sdist_ships_the_tree(session: nox.Session, unpacked: Path) -> None:
    """Every file git tracks (but CI's own) is in the sdist: nothing a test reads is left out."""
    git = shutil.which("git")
    if git is None or not Path(".git").exists():
        session.log("not a git checkout: the sdist's file list is not compared")
        return
    tracked = session.run(git, "ls-files", silent=True, external=True) or ""
    wanted = {p for p in str(tracked).splitlines() if not p.startswith((".ci/", ".git"))}
    missing = sorted(p for p in wanted if not (unpacked / p).is_file())
    if missing:
        session.error(f"the sdist lacks {len(missing)} tracked files: {missing[:20]}")
