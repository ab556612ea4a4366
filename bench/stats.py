"""Small statistics for the benchmark figures."""
from __future__ import annotations

import math
from typing import Sequence


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between closest ranks (numpy's default method)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= p <= 100.0:
        raise ValueError("p must be between 0 and 100")
    data = sorted(values)
    rank = (len(data) - 1) * p / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return float(data[low])
    return data[low] + (data[high] - data[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50.0)


def ratio(value: float, reference: float) -> float:
    return value / reference if reference else math.inf


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
