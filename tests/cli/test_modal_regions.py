"""Modal from the command line: health URLs given or derived, so ``--preflight`` works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from beacon_orchestrator import UsageError
from beacon_orchestrator.adapters import ModalEndpoint, ModalExecutor
from beacon_orchestrator.cli._executors import ExecutorOptions

from ..adapters.fake_beacon import LiveServer, serve
from .support import invoke, statuses, write_json


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with serve() as live:
        yield live


@pytest.mark.parametrize(
    ("inference", "health"),
    [
        ("https://ws--beacon-eu-inference.modal.run", "https://ws--beacon-eu-health.modal.run"),
        ("http://127.0.0.1:9/modal/eu-west/inference", "http://127.0.0.1:9/modal/eu-west/health"),
        ("http://gpu.test/beacon-inference", "http://gpu.test/beacon-health"),
        ("http://gpu.test/generate", None),
    ],
)
def test_a_health_url_is_derived_as_beacon_derives_it(inference: str, health: str | None) -> None:
    assert ModalEndpoint(inference).health_url == health


def test_modal_health_gives_a_regions_health_url_and_comes_back_in_the_resume_hint() -> None:
    options = ExecutorOptions(
        executor="modal",
        modal_endpoints=("EU=http://gpu.test/generate", "US=http://gpu.test/us-inference"),
        modal_health=("Europe=http://gpu.test/status",),
    )
    executor = options.build()
    assert isinstance(executor, ModalExecutor)
    assert executor.endpoints["eu-west"].health_url == "http://gpu.test/status"
    assert executor.endpoints["us-east"].health_url == "http://gpu.test/us-health"
    args = options.args()
    assert args[args.index("--modal-health") + 1] == "Europe=http://gpu.test/status"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {
                "executor": "modal",
                "modal_endpoints": ("US=http://a.test/x",),
                "modal_health": ("EU=http://a.test/h",),
            },
            "--modal-health names region 'eu-west', which has no --modal-endpoint",
        ),
        (
            {
                "executor": "modal",
                "modal_endpoints": ("US=http://a.test/x",),
                "modal_health": ("M ars=http://a.test/h",),
            },
            "--modal-health M ars=...: unknown region: not a valid region name",
        ),
        (
            {
                "executor": "openai",
                "openai_base_url": "http://o.test",
                "modal_health": ("US=http://a.test/h",),
            },
            "--modal-health applies to --executor modal only",
        ),
    ],
)
def test_a_bad_modal_health_option_is_named(options: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        ExecutorOptions(**options).build()  # type: ignore[arg-type]


def test_preflight_passes_from_the_shell_with_derived_health_urls(
    server: LiveServer, tmp_path: Path
) -> None:
    server.log.reset()
    job = write_json(
        tmp_path / "job.json",
        {
            "id": "modal-cli",
            "questions": [{"id": "q", "prompt": "ok:fine"}],
            "models": [{"id": "m1", "regions": ["us-east", "eu-west"]}],
        },
    )
    db = tmp_path / "jobs.db"
    endpoints = [
        f"--modal-endpoint={alias}={server.base_url}/modal/{region}/inference"
        for alias, region in (("US", "us-east"), ("EU", "eu-west"))
    ]
    result = invoke(
        ["run", str(job), "--store", str(db), "--executor", "modal", *endpoints, "--preflight"],
        env={"BEACON_MODAL_TOKEN": ""},
    )
    assert result.exit_code == 0, result.output
    assert statuses(db, "modal-cli") == {"completed": 2}
    health = [s.path for s in server.log.snapshot() if s.method == "GET"]
    assert sorted(health) == ["/modal/eu-west/health", "/modal/us-east/health"]


def test_a_region_without_a_modal_endpoint_fails_before_anything_runs(
    server: LiveServer, tmp_path: Path
) -> None:
    job = write_json(
        tmp_path / "job.json",
        {
            "id": "modal-missing",
            "questions": [{"id": "q", "prompt": "ok:fine"}],
            "models": [{"id": "m1", "regions": ["us-east", "asia-pacific"]}],
        },
    )
    db = tmp_path / "jobs.db"
    server.log.reset()
    result = invoke(
        [
            "run",
            str(job),
            "--store",
            str(db),
            "--executor",
            "modal",
            f"--modal-endpoint=US={server.base_url}/modal/us-east/inference",
        ],
        env={"BEACON_MODAL_TOKEN": ""},
    )
    assert result.exit_code != 0
    assert "asia-pacific" in result.output
    assert "--modal-endpoint" in result.output
    assert server.log.snapshot() == []


def test_preflight_without_a_derivable_health_url_names_the_option(tmp_path: Path) -> None:
    job = write_json(
        tmp_path / "job.json",
        {
            "id": "no-health",
            "questions": [{"id": "q", "prompt": "ok:fine"}],
            "models": [{"id": "m1", "regions": ["us-east"]}],
        },
    )
    result = invoke(
        [
            "run",
            str(job),
            "--store",
            str(tmp_path / "jobs.db"),
            "--executor",
            "modal",
            "--modal-endpoint=US=http://127.0.0.1:9/generate",
            "--preflight",
        ],
        env={"BEACON_MODAL_TOKEN": ""},
    )
    assert result.exit_code == 2
    assert "no health URL for us-east: give --modal-health REGION=URL" in result.output


def test_a_job_with_a_region_of_its_own_runs_from_the_shell(
    server: LiveServer, tmp_path: Path
) -> None:
    job = write_json(
        tmp_path / "job.json",
        {
            "id": "own-region",
            "questions": [{"id": "q", "prompt": "ok:fine"}],
            "models": [{"id": "m1", "regions": ["us-east", "BR"]}],
            "regions": [{"name": "sa-east", "display_name": "Brazil", "aliases": ["BR"]}],
        },
    )
    db = tmp_path / "jobs.db"
    endpoints = [
        f"--modal-endpoint={region}={server.base_url}/modal/{region}/inference"
        for region in ("us-east", "sa-east")
    ]
    result = invoke(
        ["run", str(job), "--store", str(db), "--executor", "modal", *endpoints],
        env={"BEACON_MODAL_TOKEN": ""},
    )
    assert result.exit_code == 0, result.output
    assert statuses(db, "own-region") == {"completed": 2}


def test_a_misspelt_modal_endpoint_region_is_named_with_the_regions_given(
    tmp_path: Path,
) -> None:
    job = write_json(
        tmp_path / "job.json",
        {
            "id": "typo",
            "questions": [{"id": "q", "prompt": "ok:fine"}],
            "models": [{"id": "m1", "regions": ["eu-west"]}],
        },
    )
    result = invoke(
        [
            "run",
            str(job),
            "--store",
            str(tmp_path / "jobs.db"),
            "--executor",
            "modal",
            "--modal-endpoint=eu-wset=http://127.0.0.1:9/modal/eu-west/inference",
        ],
        env={"BEACON_MODAL_TOKEN": ""},
    )
    assert result.exit_code == 2
    assert "runs in eu-west" in result.output
    assert "(given: eu-wset)" in result.output
