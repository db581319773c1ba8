"""The epoch number, shared between the trainer process and its loader workers.

Shard order and shuffle seeds depend on the epoch. Lightning calls ``set_epoch`` on a dataloader's
sampler at every epoch start, with the epoch restored from a checkpoint on resume; an iterable
dataset's DataLoader always owns a dummy sampler, so ``EpochLoader`` hangs the hook there and
writes into a ``multiprocessing.Value`` that persistent workers read when each epoch begins.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing

from torch.utils.data import DataLoader


class SharedEpoch:
    """An integer visible to every worker process, set by the main process."""

    def __init__(self, epoch: int = 0):
        self._value = multiprocessing.Value("i", epoch)

    def set(self, epoch: int) -> None:
        self._value.value = int(epoch)

    def get(self) -> int:
        return int(self._value.value)


class EpochLoader(DataLoader):
    """A DataLoader whose ``set_epoch`` (directly or through Lightning's sampler hook) reaches the workers.

    It also resumes mid-epoch: ``consumed`` counts the batches the trainer actually used this epoch
    (the datamodule increments it; Lightning prefetches one batch ahead, so counting yields would be
    off by one), and after ``resume_at(epoch, consumed)`` the next iteration replays that epoch's
    deterministic stream and drops the batches already trained on.

    It also keeps the books of each epoch: ``scenes_read`` and ``scenes_skipped`` (carried by the batches)
    of the latest iterator, the batches a resume drops included, so that a finite epoch read to its end can
    be compared with ``manifest_scenes``, what the manifests list (see ``SkippedSamplesLogger``).

    ``resume_at`` sets the shared epoch itself rather than waiting for ``set_epoch``: on resume
    Lightning builds the training iterator, and prefetches its first batch, in ``FitLoop.setup_data``,
    *before* its epoch-start hook calls ``set_epoch``, and it reuses that iterator for the first resumed
    epoch. (From the next epoch on it calls ``set_epoch`` first and then iterates anew.)
    """

    def __init__(
        self,
        dataset,
        shared_epoch: SharedEpoch,
        follow_epoch: bool = True,
        on_empty=None,
        manifest_scenes: int | None = None,
        **kwargs,
    ):
        super().__init__(dataset, **kwargs)
        self.shared_epoch = shared_epoch
        self.manifest_scenes = manifest_scenes  # scenes one epoch must account for; None: unknown or resampled
        # called with the epoch when an epoch ends without one batch (it should raise): an empty epoch
        # ends at once and Lightning begins the next, so data without a usable scene looped forever
        self.on_empty = on_empty
        # the hook Lightning's loops call each epoch; a validation loader ignores it, so every
        # validation sees the same scenes, views and crops and its curve compares like with like
        self.sampler.set_epoch = shared_epoch.set if follow_epoch else _ignore_epoch
        self.consumed = 0
        self.epoch = shared_epoch.get()  # the epoch of the latest iterator
        self.yielded = 0  # batches the latest iterator produced (skipped ones included)
        self.exhausted = False  # the latest iterator reached the end of its epoch
        self.scenes_read = self.scenes_skipped = 0  # by the latest iterator
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.shared_epoch.set(epoch)

    def resume_at(self, epoch: int, consumed: int) -> None:
        """Make the next iteration epoch ``epoch`` minus its first ``consumed`` batches."""
        self.shared_epoch.set(epoch)
        self._skip = consumed

    def position(self) -> tuple[int, int]:
        """(epoch, batches already trained on) of the next batch to train on: what a resume must skip to.

        After the last batch of an epoch that is the next epoch's start, not (epoch, all its batches):
        Lightning too moves to the next epoch when it resumes from a checkpoint of an epoch's last batch
        (it prefetches, so it knows that batch was the last), and the iterator it builds before its
        ``set_epoch`` serves that next epoch. An epoch's length is not known beforehand (finite mode
        counts what the shards hold), so the end is what the iterator saw, as Lightning's prefetch saw it.
        """
        if self.exhausted and self.consumed >= self.yielded:
            return self.epoch + 1, 0
        return self.epoch, self.consumed

    def _get_iterator(self):
        if self.num_workers == 0:
            return super()._get_iterator()
        with inherited_garbage_left_alone():  # the workers are forked here
            return super()._get_iterator()

    def __iter__(self):
        iterator = super().__iter__()
        self.epoch = self.shared_epoch.get()
        skip, self._skip = self._skip, 0
        self.yielded, self.exhausted = 0, False
        self.scenes_read = self.scenes_skipped = 0
        for _ in range(skip):  # now, not lazily: the position is right even before the first batch is asked for
            try:
                self._book(next(iterator))
            except StopIteration:
                self.exhausted = True
                break
            self.yielded += 1
        self.consumed = self.yielded
        return self._count(iterator)

    def _count(self, iterator):
        if not self.exhausted:
            for batch in iterator:
                self.yielded += 1
                self._book(batch)
                yield batch
            self.exhausted = True
        if self.yielded == 0 and self.on_empty is not None:
            self.on_empty(self.epoch)

    def _book(self, batch) -> None:
        self.scenes_read += len(getattr(batch, "scene_keys", ()))
        self.scenes_skipped += getattr(batch, "skipped", 0)


@contextlib.contextmanager
def inherited_garbage_left_alone():
    """Fork loader workers with this process's garbage collected, and what they inherit frozen.

    A forked worker holds copies of every object of its parent, garbage in reference cycles included,
    but none of its parent's threads. Collecting such garbage in the worker runs finalizers that may wait
    on those threads: a PyAV video frame left in a cycle (a video converted earlier in the same process)
    deadlocked every worker in ``pthread_cond_destroy`` of FFmpeg's thread pool, and the epoch hung. So
    the parent collects first, while its threads live, and ``gc.freeze`` keeps the workers' collector off
    everything they inherit (which also spares those pages copy-on-write). The parent unfreezes at once.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _ignore_epoch(epoch: int) -> None:
    return None
