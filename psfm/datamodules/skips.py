"""Counting what the loader skips, so bad data is visible as a number instead of a crash or a silence.

Each loader process (main or worker) has one ``SKIPS`` counter. The webdataset error handler and
the scene stages add to it; the batching stage drains it into ``MultiViewBatch.skipped``, so the
count travels with the data out of worker processes, and the training loop sums it over ranks.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

log = logging.getLogger("psfm.data")

MAX_LOGGED_PER_PROCESS = 20


class SkipCounter:
    """Per-process tally of skipped scenes, by reason.

    It counts scenes, not events: one unreadable shard loses every scene its manifest lists, and a
    count of one for it hid fifteen of sixteen lost scenes. ``events`` counts the calls, which is what
    the log limit is about.
    """

    def __init__(self) -> None:
        self.pending = 0
        self.total = 0
        self.events = 0
        self.reasons: Counter[str] = Counter()
        self.last = ""  # the latest message, for an error that must say why nothing was usable

    def add(self, reason: str, message: str, scenes: int = 1) -> None:
        """Count ``scenes`` lost for ``reason`` (at least one: a shard of unknown size counts as one)."""
        scenes = max(1, scenes)
        self.pending += scenes
        self.total += scenes
        self.events += 1
        self.reasons[reason] += scenes
        self.last = message
        what = "skipped" if scenes == 1 else f"skipped {scenes} scenes"
        if self.events <= MAX_LOGGED_PER_PROCESS:
            log.warning("%s: %s", what, message)
        elif self.events == MAX_LOGGED_PER_PROCESS + 1:
            log.warning("%s: %s (further skips in this process are counted, not logged)", what, message)

    def start_process(self) -> None:
        """Begin a fresh tally: in a forked process, run after every fork.

        A fork copies its parent's counter: skips the parent had not yet drained would travel again in the
        worker's first batch (counted twice), and a parent past its log limit left the worker silent.
        """
        self.__init__()

    def since(self, before: Counter[str]) -> Counter[str]:
        """Skips by reason added after ``before`` (a copy of ``reasons`` taken earlier), reasons with none left out."""
        return +Counter({reason: count - before[reason] for reason, count in self.reasons.items()})

    def drain(self) -> int:
        """Scenes skipped since the last drain; the batching stage attaches this to the next batch."""
        pending, self.pending = self.pending, 0
        return pending


SKIPS = SkipCounter()
# a forked process (a DataLoader worker) starts its own tally: see ``SkipCounter.start_process``. A hook
# rather than a worker_init_fn, which would stop Lightning's ``seed_everything(workers=True)`` adding its own
os.register_at_fork(after_in_child=SKIPS.start_process)


class NoUsableScenesError(RuntimeError):
    """The loader found no scene to batch: every shard failed to read, or every scene it read was skipped.

    Raised in a loader worker, it reaches the main process rebuilt by torch from a message that holds
    the worker's whole traceback; the constructor keeps only the original message, so what a caller
    prints (``psfm pretrain``, ``psfm shards``) is the one line that says why.
    """

    def __init__(self, message: str):
        marker = f"{type(self).__name__}: "
        if message.startswith("Caught ") and marker in message:  # torch's ExceptionWrapper.reraise
            message = message.rsplit(marker, 1)[1].strip().splitlines()[0]
        super().__init__(message)


def summarize(reasons: Counter[str]) -> str:
    """``'too_few_views x24, FileNotFoundError x2'``."""
    return ", ".join(f"{reason} x{count}" for reason, count in reasons.most_common())


class DrawLimit:
    """Stops an endless (resampled) shard stream that keeps drawing without producing a batch.

    Readable data yields a batch within ``shuffle_buffer + batch_size`` draws (a readable shard holds
    at least one scene), so ``limit``, ten times that, is only reached when nearly all that was drawn is
    unusable: every shard missing, or every scene below ``views.min_views``. Without it the stream
    drew forever, logging the first 20 skips and then nothing. One per pipeline and process: the
    shard stage counts draws, the batching stage reports each batch.
    """

    def __init__(self, limit: int, where: str):
        self.limit, self.where = limit, where
        self.draws = 0
        self.reasons_before: Counter[str] = Counter()

    def start(self) -> None:
        """A new stream (epoch) in this process."""
        self.batch()

    def batch(self) -> None:
        self.draws = 0
        self.reasons_before = Counter(SKIPS.reasons)

    def draw(self) -> None:
        self.draws += 1
        if self.draws > self.limit:
            skipped = SKIPS.since(self.reasons_before)
            raise NoUsableScenesError(
                f"no usable scene in {self.limit} shard draws in a row from {self.where}: "
                f"{sum(skipped.values())} scenes skipped ({summarize(skipped) or 'the shards hold no scene'})"
                + (f"; last: {SKIPS.last}" if SKIPS.last else "")
            )


def describe(exception: BaseException) -> str:
    """One line naming the problem and, when webdataset attached it, the shard it happened in."""
    args = [a for a in exception.args if isinstance(a, str)]
    message = args[0] if args else repr(exception)
    urls = [a for a in args[1:] if a and a != message]
    where = f" (in {urls[-1]})" if urls else ""
    return f"{type(exception).__name__}: {message}{where}"


def reason_of(exception: BaseException) -> str:
    """The skip reason of an error: its ``reason`` when it names one (``ShardFormatError``), else its class."""
    return getattr(exception, "reason", None) or type(exception).__name__


def skip_and_count(exception: BaseException) -> bool:
    """webdataset error handler: log, count one scene, and keep going (``True`` means continue)."""
    SKIPS.add(reason_of(exception), describe(exception))
    return True
