"""Timing uncertainty carried to a verdict: bootstrap intervals of fitted exponents, and checks they leave open.

A fitted latency exponent comes from one median per point; its interval comes from the raw
per-call samples behind each median (``details.samples`` of the ``latency_s`` records): each
point's samples are resampled with replacement, the medians refitted (log–log least squares, as
:func:`archbench.measure.scaling.fit_loglog`), and the percentile interval of the slopes taken
(``scipy.stats.bootstrap``, a fixed seed, so a run is reproducible).

A check that reads such a figure is evaluated at the ends of each interval: when the outcome
differs within the interval the check is ``inconclusive`` (timing too noisy), never holds or refuted.
Count-based figures have no interval, and their checks are unaffected.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Mapping, Sequence

CONFIDENCE = 0.95
RESAMPLES = 999
SEED = 0


def exponent_interval(xs: Sequence[float], samples: Sequence[Sequence[float]],
                      confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The ``confidence`` bootstrap interval of the log–log slope of the per-point medians of ``samples`` against
    ``xs``; None with fewer than two points or a point of fewer than two positive samples."""
    import numpy as np
    from scipy.stats import bootstrap

    if len(xs) < 2 or len(xs) != len(samples) or any(len(s) < 2 or min(s) <= 0 for s in samples):
        return None
    log_x = np.log(np.asarray(xs, dtype=float))
    centred = log_x - log_x.mean()

    def slope(*resampled, axis=-1):
        log_medians = np.log(np.stack([np.median(s, axis=axis) for s in resampled], axis=-1))
        return (log_medians * centred).sum(axis=-1) / (centred**2).sum()

    result = bootstrap(tuple(np.asarray(s, dtype=float) for s in samples), slope, paired=False, vectorized=True,
                       confidence_level=confidence, n_resamples=RESAMPLES, method="percentile",
                       random_state=np.random.default_rng(SEED))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return (low, high) if math.isfinite(low) and math.isfinite(high) else None


def undecided(used: Sequence[str], figures: Mapping[str, Any], intervals: Mapping[str, tuple[float, float]],
              decide: Callable[[Mapping[str, Any]], bool]) -> list[str] | None:
    """The uncertain figures among ``used``, written ``NAME in [low, high]``, when ``decide(figures)`` differs
    between the ends of their intervals; None when every end gives the same outcome (or none is uncertain)."""
    uncertain = [name for name in dict.fromkeys(used) if name in intervals]
    if not uncertain:
        return None
    outcomes = {bool(decide({**figures, **dict(zip(uncertain, ends))}))
                for ends in itertools.product(*(intervals[name] for name in uncertain))}
    if len(outcomes) < 2:
        return None
    return [f"{name} in [{intervals[name][0]:.3g}, {intervals[name][1]:.3g}]" for name in uncertain]
