"""Survival metrics: Harrell's C-index and a Kaplan–Meier split at the median risk (lifelines)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test
from lifelines.utils import concordance_index as lifelines_concordance_index

from braindino.metrics._inputs import event_flags, require, same_length, vector


def _survival_inputs(
    time: Any, risk: Any, event: Any, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    times = vector(time, f"{name}(time)")
    risks = vector(risk, f"{name}(risk)")
    require(
        bool(np.all(times >= 0)),
        f"{name}(time)",
        "contains negative follow-up times",
        "pass times since the origin (e.g. days from diagnosis)",
    )
    events = event_flags(event, len(times), f"{name}(event)")
    same_length(name, time=times, risk=risks, event=events)
    return times, risks, events


def concordance_index(time: Any, risk: Any, event: Any = None) -> float:
    """Harrell's C: the share of comparable pairs whose higher predicted risk died earlier.

    A pair (i, j) is comparable when i had the event and t_j > t_i, or t_j = t_i with j censored
    (a subject censored at a death time is taken to outlive it); pairs with tied risks count ½.
    Equals lifelines' ``concordance_index(time, -risk, event)``, which computes it. ``event``
    is 1 = event observed, 0 = censored (``None``: all observed). NaN when no pair is
    comparable (e.g. no events), so :func:`bootstrap_ci` skips such resamples.
    """
    times, risks, events = _survival_inputs(time, risk, event, "concordance_index")
    try:
        return float(lifelines_concordance_index(times, -risks, events))
    except ZeroDivisionError:  # no admissible pairs
        return float("nan")


@dataclass(frozen=True)
class KaplanMeierCurve:
    """A Kaplan–Meier survival curve of one risk group (step function at ``timeline``)."""

    timeline: np.ndarray
    survival: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    n_subjects: int
    n_events: int
    median_survival: float  # inf when the curve never drops to 0.5


@dataclass(frozen=True)
class KaplanMeierSplit:
    """High- vs low-risk Kaplan–Meier curves split at the median risk, with a log-rank test."""

    threshold: float
    high: KaplanMeierCurve
    low: KaplanMeierCurve
    logrank_statistic: float
    logrank_p: float


def _curve(times: np.ndarray, events: np.ndarray, label: str) -> KaplanMeierCurve:
    fitter = KaplanMeierFitter().fit(times, event_observed=events, label=label)
    interval = fitter.confidence_interval_.to_numpy()
    return KaplanMeierCurve(
        timeline=fitter.survival_function_.index.to_numpy(dtype=np.float64),
        survival=fitter.survival_function_[label].to_numpy(dtype=np.float64),
        ci_lower=interval[:, 0].astype(np.float64),
        ci_upper=interval[:, 1].astype(np.float64),
        n_subjects=int(times.size),
        n_events=int(events.sum()),
        median_survival=float(fitter.median_survival_time_),
    )


def kaplan_meier_split(time: Any, risk: Any, event: Any = None) -> KaplanMeierSplit:
    """Split subjects at the median predicted risk; KM curve per group and log-rank p-value.

    High risk is ``risk > median``, low risk ``risk <= median`` (subjects at the median go to the
    low group). Curves (lifelines ``KaplanMeierFitter``, 95 % intervals) and the two-group
    log-rank test (lifelines ``logrank_test``) use ``time`` and ``event`` (1 = event, 0 =
    censored; ``None``: all observed). Raises :class:`BrainDinoError` when one group is empty
    (e.g. every subject has the same predicted risk).
    """
    times, risks, events = _survival_inputs(time, risk, event, "kaplan_meier_split")
    threshold = float(np.median(risks))
    high = risks > threshold
    require(
        bool(high.any()) and bool((~high).any()),
        "kaplan_meier_split(risk)",
        f"no subject has a risk above the median {threshold:g}, so the high-risk group is empty",
        "check that the model's predicted risks vary between subjects",
    )
    test = logrank_test(
        times[high], times[~high], event_observed_A=events[high], event_observed_B=events[~high]
    )
    return KaplanMeierSplit(
        threshold=threshold,
        high=_curve(times[high], events[high], "high risk"),
        low=_curve(times[~high], events[~high], "low risk"),
        logrank_statistic=float(test.test_statistic),
        logrank_p=float(test.p_value),
    )


def logrank_p(time: Any, risk: Any, event: Any = None) -> float:
    """The log-rank p-value of :func:`kaplan_meier_split` (high vs low predicted risk)."""
    return kaplan_meier_split(time, risk, event).logrank_p


c_index = concordance_index  # the name task configs use
