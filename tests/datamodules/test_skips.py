"""The skip counter, its log limit, the draw limit of endless streams, and the one-line error they end in."""

from __future__ import annotations

from collections import Counter

import pytest
from torch._utils import ExceptionWrapper

from psfm.datamodules import skips
from psfm.datamodules.skips import MAX_LOGGED_PER_PROCESS, DrawLimit, NoUsableScenesError, SkipCounter, summarize


@pytest.fixture
def fresh_process(monkeypatch) -> SkipCounter:
    """The process-global ``SKIPS`` as a process that has skipped nothing yet sees it (restored afterwards)."""
    counter = SkipCounter()
    monkeypatch.setattr(skips, "SKIPS", counter)
    return counter


def test_the_first_skips_are_logged_then_one_line_says_the_rest_are_only_counted(caplog):
    """A bad dataset must not flood the log, yet every skip must still count and the cut-off must be said once.

    (mutation testing: ``events += 2`` and a changed ``'skipped'`` prefix survived.)
    """
    counter = SkipCounter()
    with caplog.at_level("WARNING", logger="psfm.data"):
        for index in range(MAX_LOGGED_PER_PROCESS + 5):
            counter.add("decode", f"scene {index}")
    logged = [record.getMessage() for record in caplog.records]
    assert logged == [f"skipped: scene {index}" for index in range(MAX_LOGGED_PER_PROCESS)] + [
        f"skipped: scene {MAX_LOGGED_PER_PROCESS} (further skips in this process are counted, not logged)"
    ]
    assert counter.total == MAX_LOGGED_PER_PROCESS + 5 and counter.reasons == {"decode": MAX_LOGGED_PER_PROCESS + 5}


def test_summarize_lists_reasons_most_frequent_first():
    """The reason list is what ``psfm shards`` and the no-usable-scene error print; nothing skipped is empty.

    (mutation testing: the ``', '.join`` of ``summarize`` survived: no in-process test reached it.)
    """
    assert (
        summarize(Counter({"FileNotFoundError": 2, "too_few_views": 24})) == "too_few_views x24, FileNotFoundError x2"
    )
    assert summarize(Counter()) == ""


def test_the_draw_limit_allows_limit_fruitless_draws_after_each_batch(fresh_process):
    """Readable data must never trip the limit: each batch restarts the count, and exactly ``limit`` draws pass.

    A process that skipped nothing has no 'last' message, so the error must not end in an empty '; last: '.
    (mutation testing: ``draws = 1`` in ``batch``, a non-empty initial ``SkipCounter.last`` and an
    unconditional '; last:' suffix survived.)
    """
    limit = DrawLimit(3, "2 shard(s) (a.tar, ...)")
    limit.start()
    for _ in range(3):
        limit.draw()
    limit.batch()  # a batch came out: the shards are readable after all
    for _ in range(3):
        limit.draw()
    with pytest.raises(NoUsableScenesError) as raised:
        limit.draw()
    assert str(raised.value) == (
        "no usable scene in 3 shard draws in a row from 2 shard(s) (a.tar, ...): 0 scenes skipped "
        "(the shards hold no scene)"
    )


def test_the_draw_limit_error_counts_only_the_skips_since_the_last_batch_and_names_the_last(fresh_process):
    """The error says why the draws were fruitless: the skips since the last batch by reason, and the last one."""
    fresh_process.add("decode", "an old skip, before the last batch")
    limit = DrawLimit(2, "1 shard(s) (a.tar)")
    limit.start()
    fresh_process.add("too_few_views", "a.tar:scene_0001: 1 views, fewer than views.min_views=2", scenes=2)
    limit.draw()
    limit.draw()
    with pytest.raises(NoUsableScenesError) as raised:
        limit.draw()
    assert str(raised.value) == (
        "no usable scene in 2 shard draws in a row from 1 shard(s) (a.tar): 2 scenes skipped (too_few_views x2); "
        "last: a.tar:scene_0001: 1 views, fewer than views.min_views=2"
    )


def _reraised_from_a_worker(message: str, cause: str | None = None) -> NoUsableScenesError:
    """What the main process gets when a loader worker raised ``NoUsableScenesError(message)`` (from ``cause``)."""
    try:
        if cause is None:
            raise NoUsableScenesError(message)
        try:
            raise NoUsableScenesError(cause)
        except NoUsableScenesError as error:
            raise NoUsableScenesError(message) from error
    except NoUsableScenesError:
        wrapper = ExceptionWrapper(where="in DataLoader worker process 0")  # what torch's worker loop sends back
    with pytest.raises(NoUsableScenesError) as reraised:
        wrapper.reraise()
    return reraised.value


def test_an_error_from_a_worker_keeps_only_the_message_of_the_error_raised_last():
    """``psfm pretrain`` prints this one line; torch's rebuilt message holds the worker's whole traceback, and a
    chained one holds the marker ``NoUsableScenesError: `` once per error, the last being the one raised.

    (mutation testing: ``rsplit(marker, None)`` in place of ``rsplit(marker, 1)`` survived.)
    """
    assert str(_reraised_from_a_worker("no usable scene in 100 shard draws")) == "no usable scene in 100 shard draws"
    chained = _reraised_from_a_worker("no usable scene in 100 shard draws", cause="an earlier cause")
    assert str(chained) == "no usable scene in 100 shard draws"
    assert str(NoUsableScenesError("no usable scene: plain")) == "no usable scene: plain"  # raised in this process
    # only torch's rebuilt message is cut: one of our own that quotes the marker, or that starts with
    # "Caught " without it, stays whole (mutation testing: `and` -> `or` survived)
    quoting = "epoch 0 gave no batch: NoUsableScenesError: every shard missing"
    assert str(NoUsableScenesError(quoting)) == quoting
    assert str(NoUsableScenesError("Caught up: no scene left")) == "Caught up: no scene left"


def test_describe_names_an_error_without_a_message_by_its_repr():
    """(mutation testing: always taking ``args[0]``, an IndexError on an error raised bare, survived.)"""
    assert skips.describe(ValueError()) == "ValueError: ValueError()"
    assert skips.describe(KeyError(3)) == "KeyError: KeyError(3)"  # no string argument either
    assert skips.describe(OSError("bad header", "a.tar")) == "OSError: bad header (in a.tar)"
