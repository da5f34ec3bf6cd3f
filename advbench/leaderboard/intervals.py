"""Confidence intervals for accuracies measured on n samples.

A robust accuracy on 1,000 samples is a binomial proportion: its 95% interval is about +-3 pp, wider than
many of the differences leaderboards rank by. The Wilson score interval (Wilson 1927) keeps its coverage near
the nominal level even at 0% or 100% and for small n, where the textbook normal interval collapses to a point.
"""

from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (default: 95%).

    Returns:
        (low, high) in [0, 1]; ``(nan, nan)`` when ``n`` is 0.
    """
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n], got {successes} of {n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at p = 0 (or 1) the bound is exactly 0 (or 1); centre - half leaves a rounding residue (3.5e-18 at n=100)
    # that would put the interval's low end above the observed 0%
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)



def median_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median of ``values``: the binomial order-statistic interval.

    With x_(1) <= ... <= x_(n) sorted, [x_(l), x_(n+1-l)] covers the population median with probability
    ``1 - 2 P(B <= l - 1)``, B ~ Binomial(n, 1/2); ``l`` is the largest index keeping that at least
    ``confidence``. No assumption on the distribution, so infinite values (a minimum-norm attack that found
    nothing) are fine: an upper end of ``inf`` says the median may be "not found".

    Returns:
        (low, high); ``(nan, nan)`` when n is too small to reach ``confidence`` (n < 6 at 95%).
    """
    xs = sorted(float(v) for v in values)
    n = len(xs)
    alpha = 1.0 - confidence
    tail, best = 0.0, 0
    for k in range(n // 2 + 1):  # tail = P(B <= k); l = k + 1 is allowed while 2 * P(B <= k) <= alpha
        tail += math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2.0))
        if 2.0 * tail > alpha:
            break
        best = k + 1
    if best == 0:
        return (math.nan, math.nan)
    return (xs[best - 1], xs[n - best])


__all__ = ["median_interval", "wilson_interval"]
