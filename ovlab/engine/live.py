"""DVCLive logging that survives a resume: the history lives in the checkpoint and is replayed.

DVC removes a stage's outputs before re-running it, and a killed run may have logged steps after
its last checkpoint. So the loop keeps its logged rows in the checkpoint; on resume the DVCLive
folder is rebuilt from those rows (nothing after the checkpoint survives), then logging goes on.
"""

from __future__ import annotations

import shutil
from pathlib import Path


class LiveLog:
    """Rows of scalars → a DVCLive folder (``metrics.json``, ``plots/metrics/<name>.tsv``).

    Args:
        directory: the DVCLive folder (a stage output).
        history: rows logged before (from the checkpoint) to replay.
        enabled: False on non-zero DDP ranks.
    """

    def __init__(self, directory: str | Path, history: list[dict] | None = None, enabled: bool = True):
        self.history: list[dict] = list(history or [])
        self.live = None
        if not enabled:
            return
        from dvclive import Live

        d = Path(directory)
        if d.exists():
            shutil.rmtree(d)
        self.live = Live(str(d), save_dvc_exp=False, dvcyaml=False)
        for row in self.history:
            self._write(row)

    def _write(self, row: dict) -> None:
        self.live.step = int(row["step"])
        for k, v in row.items():
            if k != "step":
                self.live.log_metric(k, float(v))
        self.live.next_step()

    def log(self, row: dict) -> None:
        """Log one row ``{"step": it, name: value, ...}`` and keep it for the checkpoint."""
        self.history.append(dict(row))
        if self.live is not None:
            self._write(row)

    def summary(self, values: dict) -> None:
        """Final scalars (no plot), e.g. the evaluation metrics."""
        if self.live is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)):
                self.live.log_metric(k, float(v), plot=False)
        self.live.make_summary()

    def close(self) -> None:
        if self.live is not None:
            self.live.end()
