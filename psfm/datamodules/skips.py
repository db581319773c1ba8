"""Counting what the loader skips, so bad data is visible as a number instead of a crash or a silence.

Each loader process (main or worker) has one ``SKIPS`` counter. The webdataset error handler and
the scene stages add to it; the batching stage drains it into ``MultiViewBatch.skipped``, so the
count travels with the data out of worker processes, and the training loop sums it over ranks.
"""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger("psfm.data")

MAX_LOGGED_PER_PROCESS = 20


class SkipCounter:
    """Per-process tally of skipped samples, by reason."""

    def __init__(self) -> None:
        self.pending = 0
        self.total = 0
        self.reasons: Counter[str] = Counter()

    def add(self, reason: str, message: str) -> None:
        self.pending += 1
        self.total += 1
        self.reasons[reason] += 1
        if self.total <= MAX_LOGGED_PER_PROCESS:
            log.warning("skipped: %s", message)
        elif self.total == MAX_LOGGED_PER_PROCESS + 1:
            log.warning("skipped: %s (further skips in this process are counted, not logged)", message)

    def drain(self) -> int:
        """Skips since the last drain; the batching stage attaches this to the next batch."""
        pending, self.pending = self.pending, 0
        return pending


SKIPS = SkipCounter()


def describe(exception: BaseException) -> str:
    """One line naming the problem and, when webdataset attached it, the shard it happened in."""
    args = [a for a in exception.args if isinstance(a, str)]
    message = args[0] if args else repr(exception)
    urls = [a for a in args[1:] if a and a != message]
    where = f" (in {urls[-1]})" if urls else ""
    return f"{type(exception).__name__}: {message}{where}"


def skip_and_count(exception: BaseException) -> bool:
    """webdataset error handler: log, count, and keep going (``True`` means continue)."""
    SKIPS.add(type(exception).__name__, describe(exception))
    return True
