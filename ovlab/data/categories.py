"""Category catalogs: the class lists of each dataset, shipped as the project's own data files."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ovlab.data.errors import CorruptFileError
from ovlab.data.files import read_json


@dataclass(frozen=True)
class Category:
    """One class of a dataset.

    Attributes:
        index: contiguous training index (0..K-1), the value in semantic label maps.
        id: the dataset's own id (e.g. COCO category id 1..200).
        name: raw dataset name (e.g. ``"wall-other-merged"``).
        isthing: thing (countable instances) or stuff.
        color: RGB colour for visualisation.
        novel: held out as unseen in the dataset's open-vocabulary split.
    """

    index: int
    id: int
    name: str
    isthing: bool = False
    color: tuple[int, int, int] = (0, 0, 0)
    novel: bool = False
    extra: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class CategoryList:
    """An ordered class list with lookups by index, id and name."""

    dataset: str
    categories: tuple[Category, ...]
    ignore_label: int = 255

    def __len__(self) -> int:
        return len(self.categories)

    def __iter__(self):
        return iter(self.categories)

    def __getitem__(self, index: int) -> Category:
        return self.categories[index]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.categories]

    def by_id(self) -> dict[int, Category]:
        """``{dataset id: Category}``."""
        return {c.id: c for c in self.categories}

    def by_name(self) -> dict[str, Category]:
        """``{raw name: Category}``."""
        return {c.name: c for c in self.categories}

    def seen(self) -> list[Category]:
        """Classes of the training (seen) split: those not marked ``novel``."""
        return [c for c in self.categories if not c.novel]

    def unseen(self) -> list[Category]:
        """Classes held out as unseen (``novel``), e.g. GKC's 18 COCO or 12 VIPSeg classes."""
        return [c for c in self.categories if c.novel]


def catalog_names() -> list[str]:
    """Names of the catalogs shipped in ``ovlab/data/catalog``."""
    root = resources.files("ovlab.data") / "catalog"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".json"))


def load_categories(name_or_path: str | Path) -> CategoryList:
    """Load a category catalog by name (``"coco_panoptic_133"``) or from a JSON file.

    The JSON holds ``{"dataset": str, "ignore_label": int, "categories": [{"index", "id", "name",
    ...}]}`` with indices 0..K-1 in order.

    Raises:
        FileNotFoundError: unknown catalog name / missing file (lists the shipped catalogs).
        CorruptFileError: invalid JSON, or indices not contiguous, or duplicate ids/names.
    """
    p = Path(name_or_path)
    if not p.suffix:
        p = Path(str(resources.files("ovlab.data") / "catalog" / f"{name_or_path}.json"))
        if not p.is_file():
            raise FileNotFoundError(
                f"no category catalog named {name_or_path!r}; shipped: {', '.join(catalog_names())} "
                "(or give a path to a JSON file)"
            )
    if not p.is_file():
        raise FileNotFoundError(f"{p}: category file not found")
    doc = read_json(p)
    try:
        raw = doc["categories"]
        cats = tuple(
            Category(
                index=int(c["index"]),
                id=int(c["id"]),
                name=str(c["name"]),
                isthing=bool(c.get("isthing", False)),
                color=tuple(c.get("color") or (0, 0, 0)),
                novel=bool(c.get("novel", False)),
                extra={k: v for k, v in c.items() if k not in {"index", "id", "name", "isthing", "color", "novel"}},
            )
            for c in raw
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptFileError(p, f"bad category entry ({exc!r})") from None
    if [c.index for c in cats] != list(range(len(cats))):
        raise CorruptFileError(p, "category indices must be 0..K-1 in order")
    for attr in ("id", "name"):
        vals = [getattr(c, attr) for c in cats]
        dup = sorted({v for v in vals if vals.count(v) > 1}, key=str)
        if dup:
            raise CorruptFileError(p, f"duplicate category {attr}s: {dup[:5]}")
    return CategoryList(dataset=str(doc.get("dataset", p.stem)), categories=cats, ignore_label=int(doc.get("ignore_label", 255)))
