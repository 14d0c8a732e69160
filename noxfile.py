"""Developer sessions: ``nox -s tests lint typing docs bench``.

Sessions use uv to build their virtualenvs when it is installed (much faster on CI) and fall
back to virtualenv otherwise.
"""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typing", "docs"]

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (asyncio and trio) under coverage."""
    session.install("-e", ".[test]")
    env = {"HYPOTHESIS_PROFILE": os.environ.get("HYPOTHESIS_PROFILE", "dev")}
    session.run("coverage", "run", "-m", "pytest", *session.posargs, env=env)
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
