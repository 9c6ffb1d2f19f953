"""Dataset errors: a missing root shows the expected layout; a corrupt file is named."""

from __future__ import annotations

from pathlib import Path


class DatasetNotFoundError(FileNotFoundError):
    """A dataset root or one of its required files is missing.

    The message names what is missing and draws the layout the reader expects.
    """

    def __init__(self, dataset: str, missing: str | Path, layout: str, hint: str = ""):
        self.dataset = dataset
        self.missing = Path(missing)
        msg = f"{dataset}: not found: {missing}\nExpected layout:\n{layout.rstrip()}"
        if hint:
            msg += f"\n{hint}"
        super().__init__(msg)


class CorruptFileError(ValueError):
    """A file exists but cannot be decoded (truncated PNG, invalid JSON, wrong shape...)."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        super().__init__(f"{path}: {reason}")
