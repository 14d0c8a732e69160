"""Hypothesis strategies that generate valid :class:`~beacon_orchestrator.JobSpec` values.

Every spec drawn passes the constructor's validation and survives ``to_dict`` -> ``json`` ->
``from_dict`` unchanged, so property tests can use them for any layer (loading, scheduling,
stores) without filtering.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from .._errors import UsageError
from .._spec import (
    BUILTIN_ALIASES,
    BUILTIN_REGIONS,
    JobSpec,
    Limits,
    ModelTarget,
    Question,
    is_region_slug,
)
from .._status import MinSuccessRate

__all__ = ["job_specs"]

# Regions beyond Beacon's three, for jobs that ask for more; further ones are numbered.
_EXTRA_REGIONS = ("sa-east", "af-south", "me-central", "ap-northeast", "us-west", "eu-north")

# Ids: mostly the ASCII shapes real jobs use, sometimes any printable text without leading or
# trailing white space (white space, control and formatting characters are excluded from the
# alphabet: an id is printable text).
_ASCII_ID = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=16)
_UNICODE_ID = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=12,
)
_IDS = st.one_of(_ASCII_ID, _ASCII_ID, _UNICODE_ID)

_PROMPTS = st.text(
    alphabet=st.characters(exclude_categories=("Cs", "Co", "Cn")), min_size=1, max_size=80
).filter(lambda text: bool(text.strip()))

_JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
_JSON_VALUES = st.recursive(
    _JSON_LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=6), children, max_size=3),
    ),
    max_leaves=6,
)

# Extra parameter names carry a prefix so they never collide with the checked ones
# (temperature, max_tokens) and give them an invalid value.
_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(min_value=0.0, max_value=2.0),
        "max_tokens": st.integers(min_value=1, max_value=8192),
    },
).flatmap(
    lambda known: st.dictionaries(
        st.text(min_size=1, max_size=8).map(lambda k: f"x-{k}"), _JSON_VALUES, max_size=2
    ).map(lambda extra: {**known, **extra})
)

_METADATA = st.dictionaries(st.text(max_size=10), _JSON_VALUES, max_size=4)

_CATEGORIES = st.none() | _ASCII_ID
_MODEL_NAMES = st.none() | st.text(max_size=12)
_PROVIDERS = st.none() | st.sampled_from(("modal", "openai", "vllm", "ollama"))
_RATES = st.sampled_from((0.0, 0.5, 0.67, 1.0)) | st.floats(0.0, 1.0)

_SECONDS = st.floats(min_value=0.001, max_value=86_400.0)
_LIMITS = st.builds(
    Limits,
    max_concurrency=st.none() | st.integers(1, 64),
    per_region=st.none() | st.integers(1, 16),
    per_endpoint=st.integers(1, 4),
    attempt_timeout=st.none() | _SECONDS,
    job_timeout=st.none() | _SECONDS,
    cancel_grace=st.just(0.0) | st.floats(min_value=0.0, max_value=30.0),
)


def job_specs(
    *,
    min_questions: int = 1,
    max_questions: int = 10,
    min_models: int = 1,
    max_models: int = 6,
    max_regions: int = 6,
    regions: Sequence[str] | None = None,
    with_limits: bool = True,
    max_samples: int = 1,
) -> st.SearchStrategy[JobSpec]:
    """A strategy for valid job specs.

    Ids vary (ASCII and unicode), prompts are any non-blank text, and params, metadata,
    limits and the min-success-rate policy are drawn too. Every spec drawn is valid and
    round-trips through ``to_dict``/``from_dict`` and JSON.

    Args:
        min_questions: Fewest questions (at least 1).
        max_questions: Most questions.
        min_models: Fewest models (at least 1).
        max_models: Most models.
        max_regions: Most distinct regions in one job (at least 1); each model runs in a
            non-empty subset of the job's regions.
        regions: The canonical region names to draw from (default: ``us-east``, ``eu-west``,
            ``asia-pacific``, then other slugs as ``max_regions`` asks).
        with_limits: Draw :class:`~beacon_orchestrator.Limits` too; when false every spec has
            the default (unbounded, one request per endpoint, no timeouts).
        max_samples: Most samples per cell (each spec has 1 to this many).

    Raises:
        UsageError: When the bounds are inconsistent or a region name is not canonical.
    """
    if min_questions < 1 or max_questions < min_questions:
        raise UsageError(
            f"need 1 <= min_questions <= max_questions, got {min_questions}, {max_questions}"
        )
    if min_models < 1 or max_models < min_models:
        raise UsageError(f"need 1 <= min_models <= max_models, got {min_models}, {max_models}")
    if max_regions < 1:
        raise UsageError(f"need max_regions >= 1, got {max_regions}")
    if max_samples < 1:
        raise UsageError(f"need max_samples >= 1, got {max_samples}")
    if regions is None:
        pool = [*BUILTIN_REGIONS, *_EXTRA_REGIONS]
        pool += [f"region-{i}" for i in range(len(pool), max_regions)]
        pool = pool[: max(max_regions, len(BUILTIN_REGIONS))]
    else:
        pool = list(dict.fromkeys(regions))
        bad = [r for r in pool if not is_region_slug(r) or r in BUILTIN_ALIASES]
        if bad or not pool:
            raise UsageError(f"regions must be canonical region names, got {list(regions)!r}")
    return _job_specs(
        min_questions=min_questions,
        max_questions=max_questions,
        min_models=min_models,
        max_models=max_models,
        max_regions=max_regions,
        pool=tuple(pool),
        with_limits=with_limits,
        max_samples=max_samples,
    )


@st.composite
def _job_specs(
    draw: st.DrawFn,
    *,
    min_questions: int,
    max_questions: int,
    min_models: int,
    max_models: int,
    max_regions: int,
    pool: tuple[str, ...],
    with_limits: bool,
    max_samples: int,
) -> JobSpec:
    job_regions = draw(
        st.lists(
            st.sampled_from(pool), min_size=1, max_size=min(max_regions, len(pool)), unique=True
        )
    )
    question_ids = draw(st.lists(_IDS, min_size=min_questions, max_size=max_questions, unique=True))
    questions = [Question(qid, draw(_PROMPTS), draw(_CATEGORIES)) for qid in question_ids]
    model_ids = draw(st.lists(_IDS, min_size=min_models, max_size=max_models, unique=True))
    # Each model runs in a non-empty, ordered subset of the job's regions.
    region_subsets = st.lists(
        st.sampled_from(job_regions), min_size=1, max_size=len(job_regions), unique=True
    )
    models = [
        ModelTarget(
            mid,
            draw(region_subsets),
            name=draw(_MODEL_NAMES),
            provider=draw(_PROVIDERS),
        )
        for mid in model_ids
    ]
    used = len({r for m in models for r in m.regions})
    policy = MinSuccessRate(
        rate=draw(_RATES),
        min_regions=draw(st.integers(0, used)),
        empty_counts_as_success=draw(st.booleans()),
    )
    params: dict[str, Any] = draw(_PARAMS)
    return JobSpec(
        id=draw(_IDS),
        questions=questions,
        models=models,
        params=params,
        limits=draw(_LIMITS) if with_limits else Limits(),
        policy=policy,
        metadata=draw(_METADATA),
        # Drawn last and only when asked for: the specs drawn without samples stay as they were.
        samples=draw(st.integers(1, max_samples)) if max_samples > 1 else 1,
    )
