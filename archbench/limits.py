"""Bounds on the numbers a user may ask for (sizes, points, seconds, threads), checked before any work.

Each check raises :class:`archbench.errors.UserError` with one line naming the value; the CLI
and the suite reader share them, so a number means the same on the command line and in a file.
"""

from __future__ import annotations

import math
import os

from archbench.errors import UserError

MAX_SIZE = 10**9
"""The largest sequence length, batch or swept value accepted."""
MAX_POINTS = 1000
"""The most values a range may hold, and the largest ``--points``."""
MAX_SECONDS = 7 * 24 * 3600.0
"""The longest ``--min-time`` or ``--timeout`` accepted: a week."""
MAX_THREADS = 1024
"""More threads than any machine archbench runs on has cores."""


def positive_finite(name: str, value: object, upper: float = MAX_SECONDS) -> float:
    """``value`` as a float when it is a finite number in (0, upper]; UserError otherwise (nan, inf, <= 0)."""
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    if not (math.isfinite(number) and 0 < number <= upper):
        raise UserError(f"{name} must be positive (a finite number of at most {upper:g}), got {value!r}")
    return float(number)


def check_points(points: object, name: str = "--points") -> int:
    """``points`` of a geometric range: an integer from 2 to :data:`MAX_POINTS`."""
    if isinstance(points, bool) or not isinstance(points, int) or not 2 <= points <= MAX_POINTS:
        raise UserError(f"{name} must be at least 2 and at most {MAX_POINTS}, got {points!r}")
    return points


def threads_warning(threads: object, name: str = "--threads") -> str | None:
    """UserError unless 1 <= threads <= MAX_THREADS; a warning line when threads exceed this machine's cores."""
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise UserError(f"{name} must be a positive integer (at most {MAX_THREADS}), got {threads!r}")
    cores = os.cpu_count() or 1
    if threads > cores:
        return f"{name} {threads} is more than this machine's {cores} cores: timings will be oversubscribed"
    return None
