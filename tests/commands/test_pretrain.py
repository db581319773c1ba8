"""``psfm pretrain``'s final table: what a person reads when the run ends."""

from __future__ import annotations

from rich.console import Console

from psfm.commands.pretrain import summary_table


def test_the_final_table_shows_the_scenes_skipped():
    """``data/skipped`` was logged but filtered out of the table: data lost to corruption went unseen."""
    metrics = {"data/skipped": 3.0, "data/skipped_total": 7.0, "train/loss": 0.25, "global_step": 10.0}
    metrics["train/loss_step"] = 0.3  # per-step duplicates stay out
    console = Console(record=True, width=100)
    console.print(summary_table(metrics))
    text = console.export_text()
    assert "data/skipped " in text and "data/skipped_total" in text and "7" in text
    assert "train/loss_step" not in text
