"""The small job the report tests read, and the facts about it they rely on.

2 questions x 2 models x 3 regions = 12 executions: one refusal, one empty answer, one failure,
and one answer whose text is hostile (it tries to end the script, inject markup and break
JavaScript's lines). The tests here pin what the default classifier makes of it, so a change
in the classifier shows up here and not as a puzzling failure in the report's tests.
"""

from __future__ import annotations

from collections.abc import Iterator

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    JobSpec,
    ModelTarget,
    Question,
)
from beacon_orchestrator.analysis import Label, compare_regions

JOB_ID = "report-job"
REGIONS = ("us-east", "eu-west", "asia-pacific")
MODELS = ("llama3.2-1b", "qwen2.5-1.5b")
QUESTIONS = ("capital", "taiwan")

HOSTILE = (
    "Canberra is the capital of Australia. </script><script>window.__pwned = 1</script>"
    '<img src="https://evil.example/x.png" onerror="window.__pwned = 2">'
    "<!-- a line separator\u2028and a paragraph separator\u2029 & done --> "
    "</ScRiPt ><script >window.__pwned = 3</script\t>"
)
REFUSAL = "I'm sorry, but I can't help with that."
FAILURE = ("PROVIDER_UNAVAILABLE", "no healthy provider in us-east after 3 attempts")

REFUSED = ExecutionKey("taiwan", "qwen2.5-1.5b", "asia-pacific")
EMPTY = ExecutionKey("capital", "qwen2.5-1.5b", "eu-west")
FAILED = ExecutionKey("taiwan", "llama3.2-1b", "us-east")
HOSTILE_KEY = ExecutionKey("capital", "llama3.2-1b", "eu-west")

ANSWERS = {
    "capital": "Canberra is the capital of Australia; it was chosen as a compromise in 1908.",
    "taiwan": "Taiwan is governed by the Republic of China, which has its own government.",
}


def small_spec(job_id: str = JOB_ID) -> JobSpec:
    return JobSpec(
        id=job_id,
        questions=[
            Question("capital", "What is the capital of Australia?"),
            Question("taiwan", "How would you describe the political status of Taiwan?"),
        ],
        models=[ModelTarget(model, REGIONS) for model in MODELS],
    )


def record(key: ExecutionKey) -> ExecutionRecord:
    """The record the small job holds for ``key``."""
    if key == FAILED:
        code, message = FAILURE
        return ExecutionRecord(
            key=key,
            status=ExecutionStatus.FAILED,
            error_code=code,
            error_message=message,
            attempts=3,
        )
    if key == EMPTY:
        return ExecutionRecord(key=key, status=ExecutionStatus.COMPLETED, text="", empty=True)
    text = {REFUSED: REFUSAL, HOSTILE_KEY: HOSTILE}.get(key, ANSWERS[key.question_id])
    return ExecutionRecord(key=key, status=ExecutionStatus.COMPLETED, text=text, attempts=1)


def small_records() -> Iterator[ExecutionRecord]:
    """The job's 12 records, made one at a time."""
    for key in small_spec().plan():
        yield record(key)


EXPECTED_LABELS = {
    (key.question_id, key.model_id, key.region): {
        REFUSED: Label.REFUSAL,
        EMPTY: Label.EMPTY,
        FAILED: Label.TECHNICAL_FAILURE,
    }.get(key, Label.SUBSTANTIVE)
    for key in small_spec().plan()
}
"""Each execution's label under the default classifier."""


def test_the_small_job_has_the_shape_the_report_tests_assume() -> None:
    spec = small_spec()
    assert spec.size == 12
    assert spec.regions == REGIONS
    assert sorted(r.key for r in small_records()) == sorted(spec.plan())


def test_the_default_classifier_labels_the_small_job_as_the_report_tests_expect() -> None:
    labels = {
        (cell.question_id, cell.model_id, region): label
        for cell in compare_regions(small_records())
        for region, label in cell.labels.items()
    }
    assert labels == EXPECTED_LABELS


def test_the_two_cells_whose_regions_disagree_rank_first() -> None:
    ranked = [(c.question_id, c.model_id, c.label_split) for c in compare_regions(small_records())]
    assert sorted(ranked[:2]) == [
        ("capital", "qwen2.5-1.5b", True),
        ("taiwan", "qwen2.5-1.5b", True),
    ]
    assert [split for _q, _m, split in ranked[2:]] == [False, False]
