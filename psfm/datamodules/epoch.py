"""The epoch number, shared between the trainer process and its loader workers.

Shard order and shuffle seeds depend on the epoch. Lightning calls ``set_epoch`` on a dataloader's
sampler at every epoch start, with the epoch restored from a checkpoint on resume; an iterable
dataset's DataLoader always owns a dummy sampler, so ``EpochLoader`` hangs the hook there and
writes into a ``multiprocessing.Value`` that persistent workers read when each epoch begins.
"""

from __future__ import annotations

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
    off by one), and after ``resume_at(epoch, consumed)`` the next iteration of that epoch replays the
    deterministic stream and drops the batches already trained on.
    """

    def __init__(self, dataset, shared_epoch: SharedEpoch, follow_epoch: bool = True, **kwargs):
        super().__init__(dataset, **kwargs)
        self.shared_epoch = shared_epoch
        # the hook Lightning's loops call each epoch; a validation loader ignores it, so every
        # validation sees the same scenes, views and crops and its curve compares like with like
        self.sampler.set_epoch = shared_epoch.set if follow_epoch else _ignore_epoch
        self.consumed = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.shared_epoch.set(epoch)

    def resume_at(self, epoch: int, consumed: int) -> None:
        self._resume = (epoch, consumed)

    def __iter__(self):
        iterator = super().__iter__()
        skip = 0
        if self._resume is not None and self._resume[0] == self.shared_epoch.get():
            skip = self._resume[1]
        self._resume = None
        for _ in range(skip):
            try:
                next(iterator)
            except StopIteration:
                break
        self.consumed = skip
        return iterator


def _ignore_epoch(epoch: int) -> None:
    return None
