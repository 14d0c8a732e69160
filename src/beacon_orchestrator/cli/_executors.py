"""Building the executor a command line asks for."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

from attrs import frozen

from .._errors import SpecError, UsageError
from .._executor import Executor
from .._retry import RetryPolicy
from .._spec import RegionTable

__all__ = ["EXECUTORS", "ExecutorChoice", "ExecutorOptions"]

ExecutorChoice: TypeAlias = Literal["demo", "hybrid-router", "modal", "openai"]
EXECUTORS: tuple[ExecutorChoice, ...] = ("demo", "hybrid-router", "modal", "openai")


def _pairs(option: str, form: str, example: str, values: Sequence[str]) -> list[tuple[str, str]]:
    """Split ``NAME=VALUE`` option values; ``form`` and ``example`` go into the error."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        name, sep, target = value.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise UsageError(f"{option} expects {form}, got {value!r} (e.g. {example})")
        pairs.append((name.strip(), target.strip()))
    return pairs


def _parse_endpoints(
    values: Sequence[str], option: str = "--modal-endpoint", kind: str = "inference"
) -> dict[str, str]:
    endpoints: dict[str, str] = {}
    example = f"us-east=https://me--beacon-{kind}.modal.run"
    # Leniently: a job may declare regions of its own, and the job is only known later; the
    # run checks that every region of the job has an endpoint before anything is sent.
    table = RegionTable.default(strict=False)
    for region, url in _pairs(option, "REGION=URL", example, values):
        try:
            name = table.normalize(region)
        except SpecError as exc:
            problem = "; ".join(p.message for p in exc.problems)
            raise UsageError(f"{option} {region}=...: unknown region: {problem}") from None
        if name in endpoints:
            raise UsageError(f"{option} names region {name!r} twice")
        endpoints[name] = url
    return endpoints


def _modal_endpoints(inference: Sequence[str], health: Sequence[str]) -> dict[str, Any]:
    """``--modal-endpoint`` URLs, with the ``--modal-health`` URL given for a region."""
    endpoints: dict[str, Any] = dict(_parse_endpoints(inference))
    from ..adapters.modal import ModalEndpoint

    for region, url in _parse_endpoints(health, "--modal-health", "health").items():
        if region not in endpoints:
            raise UsageError(
                f"--modal-health names region {region!r}, which has no --modal-endpoint"
            )
        endpoints[region] = ModalEndpoint(endpoints[region], health_url=url)
    return endpoints


def _parse_model_map(values: Sequence[str]) -> dict[str, str]:
    model_map: dict[str, str] = {}
    for model, name in _pairs("--model-map", "MODEL=NAME", "llama3.2-1b=llama3.2:1b", values):
        if model in model_map:
            raise UsageError(f"--model-map names model {model!r} twice")
        model_map[model] = name
    return model_map


@frozen(kw_only=True)
class ExecutorOptions:
    """The executor options of ``beacon run`` and ``beacon resume``.

    Secrets are not among them: each adapter reads its API key from its environment variable,
    so a key never appears in a command line, a shell history or a resume hint.

    Attributes:
        executor: Which executor.
        router_url: Base URL of the hybrid router.
        modal_endpoints: ``REGION=URL`` pairs, one per Modal region.
        modal_health: ``REGION=URL`` pairs: a Modal region's health URL, where it cannot be
            derived from the inference URL (Beacon's rule: ``-inference`` → ``-health``).
        openai_base_url: Base URL of an OpenAI-compatible server.
        model_map: ``MODEL=NAME`` pairs: the name the OpenAI-compatible server knows a job's
            model by.
        speed: Pace of the simulated executor (``demo``).
        attempts: Attempts per execution, the first included.
    """

    executor: ExecutorChoice
    router_url: str | None = None
    modal_endpoints: tuple[str, ...] = ()
    modal_health: tuple[str, ...] = ()
    openai_base_url: str | None = None
    model_map: tuple[str, ...] = ()
    speed: float = 1.0
    attempts: int | None = None

    @property
    def simulated(self) -> bool:
        """Whether the answers will be simulated."""
        return self.executor == "demo"

    def build(self) -> Executor:
        """The executor, configured.

        Raises:
            UsageError: When an option the executor needs is missing or malformed.
        """
        if self.model_map and self.executor != "openai":
            raise UsageError("--model-map applies to --executor openai only")
        if self.modal_health and self.executor != "modal":
            raise UsageError("--modal-health applies to --executor modal only")
        if self.executor == "demo":
            from .._demo import simulated_executor

            return simulated_executor(speed=self.speed)
        if self.executor == "hybrid-router":
            if not self.router_url:
                raise UsageError("--executor hybrid-router needs --router-url URL")
            from ..adapters.hybrid_router import HybridRouterExecutor

            return HybridRouterExecutor(self.router_url)
        if self.executor == "modal":
            if not self.modal_endpoints:
                raise UsageError("--executor modal needs --modal-endpoint REGION=URL per region")
            from ..adapters.modal import ModalExecutor

            return ModalExecutor(
                endpoints=_modal_endpoints(self.modal_endpoints, self.modal_health),
                regions=RegionTable.default(strict=False),
            )
        if not self.openai_base_url:
            raise UsageError("--executor openai needs --openai-base-url URL")
        from ..adapters.openai_compat import OpenAICompatExecutor

        return OpenAICompatExecutor(
            self.openai_base_url, model_map=_parse_model_map(self.model_map)
        )

    def retry(self) -> RetryPolicy | None:
        """The retry policy: the simulated one is scaled to its pace; ``None`` is the default."""
        if self.executor == "demo":
            from .._demo import demo_retry

            policy = demo_retry(self.speed)
            if self.attempts is not None:
                from attrs import evolve

                policy = evolve(policy, attempts=self.attempts)
            return policy
        return None if self.attempts is None else RetryPolicy(attempts=self.attempts)

    def args(self) -> list[str]:
        """These options as command-line arguments (for the resume hint)."""
        args = ["--executor", self.executor]
        if self.router_url:
            args += ["--router-url", self.router_url]
        for endpoint in self.modal_endpoints:
            args += ["--modal-endpoint", endpoint]
        for health in self.modal_health:
            args += ["--modal-health", health]
        if self.openai_base_url:
            args += ["--openai-base-url", self.openai_base_url]
        for pair in self.model_map:
            args += ["--model-map", pair]
        if self.executor == "demo" and self.speed != 1.0:
            args += ["--speed", f"{self.speed:g}"]
        if self.attempts is not None:
            args += ["--attempts", str(self.attempts)]
        return args


def command_line(words: Sequence[str], extra: Mapping[str, str | None] | None = None) -> str:
    """A shell-quoted command line from ``words`` and ``--option value`` pairs."""
    out = list(words)
    for option, value in (extra or {}).items():
        if value is not None:
            out += [option, value]
    return shlex.join(out)
