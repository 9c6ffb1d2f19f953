"""Tables and plots for the synonym curation notebook."""

from __future__ import annotations

import pandas as pd

from ovlab.vocab.synonyms import FILTERS, ClassSynonyms


def classes_frame(sets: list[ClassSynonyms]) -> pd.DataFrame:
    """One row per class: canonical and raw name, names, count, senses, removed per filter, note."""
    rows = []
    for s in sets:
        row = {"class": s.canonical, "raw name": s.raw_name, "n": len(s.names), "names": ", ".join(s.names),
               "senses": ", ".join(s.senses), "curation needed": s.needs_curation}
        for f in FILTERS:
            row[f"removed: {f}"] = ", ".join(s.removed.get(f, []))
        row["added"] = ", ".join(s.added)
        row["note"] = s.note
        rows.append(row)
    return pd.DataFrame(rows)


def removed_frame(sets: list[ClassSynonyms]) -> pd.DataFrame:
    """Long table of every removed name: class, filter, name."""
    rows = [{"class": s.canonical, "filter": f, "name": n} for s in sets for f in FILTERS for n in s.removed.get(f, [])]
    return pd.DataFrame(rows, columns=["class", "filter", "name"])


def names_per_class_plot(sets: list[ClassSynonyms], ax=None):
    """Histogram of names per class (seaborn); returns the matplotlib axes."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    counts = pd.Series([len(s.names) for s in sets], name="names per class")
    sns.countplot(x=counts, ax=ax, color="#4c72b0")
    ax.set_title(f"Names per class ({len(sets)} classes, mean {counts.mean():.2f})")
    return ax
