"""The synonym curator (notebook 01): keep or drop the WordNet candidates of each class and save the
manual overrides YAML (GKC §3.1: "we manually filter out noisy synonyms with semantic ambiguity").

The stage output (``results/synonyms/...``) is never edited: saving changes the curation file
(``synonyms.overrides``, schema in :mod:`ovlab.vocab.overrides`), and ``dvc repro`` then re-runs
``synonyms`` and every stage after it.

Two parts:

- :class:`OverridesEditor`: the file, edited as a ruamel.yaml round-trip document (comments, key
  order and flow lists kept; an entry the curator did not touch is written back byte for byte).
  Each change is an operation (drop / keep / add a name, drop / keep a sense) replayed on the
  document; :meth:`OverridesEditor.save` validates the result with
  :func:`ovlab.vocab.overrides.load_overrides` *before* writing, writes atomically, and refuses
  when the file changed on disk since it was loaded (:class:`CurationConflictError`);
  :meth:`OverridesEditor.reload` reads the new file and replays the unsaved operations on it.
- :class:`SynonymCurator`: the ipywidgets form over it (class list with filters, one check box per
  candidate with its sense, gloss and synonym score, a text box to add a name, Save / Reload), and
  :meth:`SynonymCurator.static` for papermill.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ovlab.atomic import write_text
from ovlab.vocab.overrides import CurationError, Overrides, load_overrides
from ovlab.vocab.synonyms import ClassSynonyms, class_synonyms

OPS = ("drop", "keep", "add", "drop_sense", "keep_sense")


class CurationConflictError(CurationError):
    """The curation file changed on disk since the curator loaded it; nothing was written."""


def _yaml():
    from ruamel.yaml import YAML

    y = YAML()  # round-trip
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap a long note
    return y


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _flow(items):
    from ruamel.yaml.comments import CommentedSeq

    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


class OverridesEditor:
    """The manual overrides file as a round-trip document, edited by operations.

    Args:
        path: the curation YAML (``synonyms.overrides``).
        vocabulary: the normalised class names (validation: an entry must name one).
        wordnet: an nltk WordNet reader (validation of ``senses``; candidates of a class).
        params: the ``synonyms`` section (:class:`ovlab.config.SynonymsParams`: filters, expansion).
        raw_names: canonical → raw dataset name (shown; default: the canonical name).

    Attributes:
        ops: the unsaved operations ``(op, class, name)``, in order.

    Raises:
        CurationError: the file is missing or invalid when loaded (names the entry).
    """

    def __init__(self, path, vocabulary, wordnet, params, raw_names: dict[str, str] | None = None):
        self.path = Path(path)
        self.vocabulary = list(vocabulary)
        self.wordnet = wordnet
        self.params = params
        self.raw_names = raw_names or {}
        self.ops: list[tuple[str, str, str]] = []
        self._load()

    # ------------------------------------------------------------------------------------- reading
    def _load(self) -> None:
        data = self.path.read_bytes() if self.path.is_file() else None
        if data is None:
            raise CurationError(f"{self.path}: curation file not found")
        load_overrides(self.path, vocabulary=self.vocabulary, wordnet=self.wordnet)
        self._digest = _sha(data)
        self.doc = _yaml().load(data.decode("utf-8"))
        if self.doc is None:
            from ruamel.yaml.comments import CommentedMap

            self.doc = CommentedMap()

    def overrides(self) -> Overrides:
        """The document as validated :class:`Overrides` (schema only: no vocabulary or sense check)."""
        return Overrides.model_validate(json.loads(json.dumps(self.doc)) or {})

    def changed_on_disk(self) -> bool:
        """The file's bytes differ from those loaded (or it is gone)."""
        return not self.path.is_file() or _sha(self.path.read_bytes()) != self._digest

    def synonyms(self, canonical: str) -> ClassSynonyms:
        """The class's synonym set under the document as edited so far
        (:func:`ovlab.vocab.synonyms.class_synonyms`)."""
        return class_synonyms(self.raw_names.get(canonical, canonical), canonical, self.wordnet, self.params,
                              self.overrides())

    def all_senses(self, canonical: str) -> list:
        """Every WordNet noun sense of the class name (nltk synsets), in WordNet order."""
        return list(self.wordnet.synsets(canonical.replace(" ", "_"), pos="n"))

    def text(self) -> str:
        """The document serialised as it would be saved."""
        buf = io.StringIO()
        _yaml().dump(self.doc, buf)
        return buf.getvalue()

    # ------------------------------------------------------------------------------------- editing
    def _entry(self, canonical: str, create: bool):
        from ruamel.yaml.comments import CommentedMap

        classes = self.doc.get("classes")
        if classes is None:
            if not create:
                return None
            self.doc["classes"] = classes = CommentedMap()
        entry = classes.get(canonical)
        if entry is None and create:
            classes[canonical] = entry = CommentedMap()
        return entry

    def _list(self, entry, key: str):
        if key not in entry or entry[key] is None:
            entry[key] = _flow([])
        return entry[key]

    @staticmethod
    def _drop_value(seq, name: str) -> bool:
        hit = [i for i, v in enumerate(seq) if str(v).lower() == name.lower()]
        for i in reversed(hit):
            del seq[i]
        return bool(hit)

    def _tidy(self, canonical: str, entry) -> None:
        """Drop the lists this editor emptied, and the entry when nothing is left in it."""
        for key in ("remove", "add"):
            if key in entry and entry[key] is not None and len(entry[key]) == 0:
                del entry[key]
        if len(entry) == 0:
            del self.doc["classes"][canonical]

    def apply(self, op: str, canonical: str, name: str, *, record: bool = True) -> None:
        """Apply one operation to the document.

        Args:
            op: ``drop`` (the name leaves the class: out of ``add``, else into ``remove``), ``keep``
                (out of ``remove``; into ``add`` when an automatic filter removed it), ``add`` (a new
                name: out of ``remove``, into ``add`` unless already kept), ``drop_sense`` /
                ``keep_sense`` (``name`` = a synset name such as ``rock.n.01``; pins ``senses``).
            canonical: the normalised class name.

        Raises:
            ValueError: unknown operation or class, or an empty name.
        """
        if op not in OPS:
            raise ValueError(f"unknown curator operation {op!r} (one of {', '.join(OPS)})")
        if canonical not in self.vocabulary:
            raise ValueError(f"{canonical!r} is not a class of the vocabulary")
        name = " ".join(str(name).split())
        if not name:
            raise ValueError("empty name")
        current = self.synonyms(canonical)
        entry = self._entry(canonical, create=True)
        if op == "drop":
            self._drop_value(entry.get("add") or [], name)
            if self._has(canonical, current.raw_name, name):
                self._list(entry, "remove").append(name)
        elif op in ("keep", "add"):
            self._drop_value(entry.get("remove") or [], name)
            if not self._has(canonical, current.raw_name, name):
                self._list(entry, "add").append(name)
        else:
            senses = [s.name() for s in self.all_senses(canonical)]
            if name not in senses:
                raise ValueError(f"{name!r} is not a noun sense of {canonical!r} (its senses: {', '.join(senses)})")
            chosen = list(entry["senses"]) if entry.get("senses") is not None else list(senses)
            if op == "drop_sense":
                chosen = [s for s in chosen if s != name]
            elif name not in chosen:
                chosen = [s for s in senses if s in set(chosen) | {name}]
            if entry.get("senses") is not None:
                seq = entry["senses"]
                del seq[:]
                seq.extend(chosen)
            else:
                entry["senses"] = _flow(chosen)
        self._tidy(canonical, entry)
        if record:
            self.ops.append((op, canonical, name))

    def _has(self, canonical: str, raw_name: str, name: str) -> bool:
        names = class_synonyms(raw_name, canonical, self.wordnet, self.params, self.overrides()).names
        return name.lower() in {n.lower() for n in names}

    @property
    def touched(self) -> list[str]:
        """Classes with unsaved operations, in first-touched order."""
        return list(dict.fromkeys(c for _, c, _ in self.ops))

    # ------------------------------------------------------------------------------------- writing
    def validate(self) -> str:
        """The text to save, validated as the pipeline will read it.

        Raises:
            CurationError: the edited document does not validate (names the entry).
        """
        text = self.text()
        with tempfile.TemporaryDirectory() as tmp:
            probe = Path(tmp) / self.path.name
            probe.write_text(text, encoding="utf-8")
            try:
                load_overrides(probe, vocabulary=self.vocabulary, wordnet=self.wordnet)
            except CurationError as exc:
                raise CurationError(str(exc).replace(str(probe), str(self.path))) from None
        return text

    def save(self) -> Path:
        """Validate, then write the file atomically (:func:`ovlab.atomic.write_text`).

        Raises:
            CurationConflictError: the file changed on disk since it was loaded (nothing written;
                :meth:`reload` replays the unsaved changes on the new file).
            CurationError: the edited document does not validate (nothing written).
        """
        if self.changed_on_disk():
            raise CurationConflictError(
                f"{self.path}: changed on disk since the curator loaded it; nothing saved. "
                "Reload (your unsaved changes are replayed on the new file), then save again.")
        text = self.validate()
        write_text(self.path, text)
        self._digest = _sha(text.encode("utf-8"))
        self.ops.clear()
        return self.path

    def reload(self) -> list[str]:
        """Read the file again and replay the unsaved operations on it.

        Returns:
            the operations that no longer apply (e.g. a class the new file's vocabulary lacks),
            as messages.

        Raises:
            CurationError: the file on disk is invalid.
        """
        pending, self.ops = list(self.ops), []
        self._load()
        failed = []
        for op, cls, name in pending:
            try:
                self.apply(op, cls, name)
            except ValueError as exc:
                failed.append(f"{op} {cls}/{name}: {exc}")
        return failed


# ----------------------------------------------------------------------------------------- scores
def mean_synonym_scores(path) -> dict[str, dict[str, float]]:
    """Mean synonym score (GKC Eq. 1) of each name of each class over the training segments.

    Args:
        path: the ``synonym_score`` stage's JSON (``{image: {segment: {class, scores: {name: p}}}}``).

    Returns:
        ``{class: {name: mean p}}``; empty when the file does not exist.
    """
    p = Path(path)
    if not p.is_file():
        return {}
    sums: dict[str, dict[str, list[float]]] = {}
    for segments in json.loads(p.read_text()).values():
        for seg in segments.values():
            for name, v in (seg.get("scores") or {}).items():
                acc = sums.setdefault(seg.get("class", "?"), {}).setdefault(name, [0.0, 0])
                acc[0] += float(v)
                acc[1] += 1
    return {c: {n: s / k for n, (s, k) in names.items()} for c, names in sums.items()}


@dataclass
class CandidateRow:
    """One candidate name of a class as the curator shows it."""

    name: str
    kept: bool
    reason: str  # "" when kept; else the filter that removed it
    sense: str
    gloss: str
    score: float | None


def candidate_rows(editor: OverridesEditor, canonical: str, scores: dict | None = None) -> list[CandidateRow]:
    """The candidates of a class (WordNet lemmas of its selected senses, then the added names), canonical
    name excluded, with whether each is kept and why not, its sense and gloss and its mean score."""
    s = editor.synonyms(canonical)
    kept = {n.lower() for n in s.names}
    why = {n.lower(): f for f, names in s.removed.items() for n in names}
    sense_of: dict[str, tuple[str, str]] = {}
    for syn in editor.all_senses(canonical):
        for lem in syn.lemmas():
            sense_of.setdefault(lem.name().replace("_", " ").lower(), (syn.name(), syn.definition()))
    cls_scores = (scores or {}).get(canonical, {})
    rows = []
    for name in [*s.candidates, *[a for a in s.added if a.lower() not in {c.lower() for c in s.candidates}]]:
        if name.lower() == canonical.lower():
            continue
        sense, gloss = sense_of.get(name.lower(), ("added", ""))
        rows.append(CandidateRow(name, name.lower() in kept, "" if name.lower() in kept else why.get(name.lower(), "?"),
                                 sense, gloss, cls_scores.get(name)))
    return rows


# ----------------------------------------------------------------------------------------- widget
class SynonymCurator:
    """The curator form (ipywidgets) over an :class:`OverridesEditor`.

    Args:
        editor: the overrides editor.
        scores: ``{class: {name: mean synonym score}}`` (:func:`mean_synonym_scores`), or ``None``.
        low_score: names below this mean score count as "low-score" for the filter.
    """

    FILTERS = ("all classes", "classes with 1 name", "classes with low-score names", "edited classes")

    def __init__(self, editor: OverridesEditor, scores: dict | None = None, low_score: float = 0.1):
        self.editor = editor
        self.scores = scores or {}
        self.low_score = low_score
        self._widget = None

    @classmethod
    def from_stage(cls, stage, *, overrides=None, scores=None, low_score: float = 0.1) -> "SynonymCurator":
        """A curator for the ``synonyms`` stage's vocabulary and curation file.

        Args:
            stage: the ``synonyms`` :class:`ovlab.config.StageParams`.
            overrides: the file to edit (default: ``synonyms.overrides``); a notebook parameter, so
                tests edit a copy.
            scores: the ``synonym_score`` JSON path (mean scores shown when it exists), or ``None``.

        Raises:
            WordNetNotFoundError, CurationError: as the ``synonyms`` stage.
        """
        from ovlab.data.categories import load_categories
        from ovlab.data.names import normalize_class_name
        from ovlab.vocab.wordnet import load_wordnet

        cfg = stage.cfg
        cats = load_categories(stage.path(cfg.categories) if cfg.categories.endswith(".json") else cfg.categories)
        raw = {normalize_class_name(c.name): c.name for c in cats}
        wn = load_wordnet(stage.path(stage.base.paths.cache))
        path = stage.path(overrides if overrides is not None else cfg.overrides)
        editor = OverridesEditor(path, list(raw), wn, cfg, raw)
        return cls(editor, mean_synonym_scores(stage.path(scores)) if scores else None, low_score)

    # ---------------------------------------------------------------------------------- filtering
    def classes(self, which: str = "all classes") -> list[str]:
        """Class names shown under a filter of :attr:`FILTERS`."""
        ed = self.editor
        if which == "classes with 1 name":
            return [c for c in ed.vocabulary if len(ed.synonyms(c).names) == 1]
        if which == "classes with low-score names":
            return [c for c in ed.vocabulary
                    if any(v < self.low_score for v in self.scores.get(c, {}).values())]
        if which == "edited classes":
            return ed.touched
        return list(ed.vocabulary)

    def frame(self, classes: list[str] | None = None):
        """pandas table of the candidates: class, name, kept, removed by, sense, gloss, score."""
        import pandas as pd

        rows = []
        for c in classes if classes is not None else self.editor.vocabulary:
            for r in candidate_rows(self.editor, c, self.scores):
                rows.append({"class": c, "name": r.name, "kept": r.kept, "removed by": r.reason, "sense": r.sense,
                             "gloss": r.gloss, "score": r.score})
        return pd.DataFrame(rows, columns=["class", "name", "kept", "removed by", "sense", "gloss", "score"])

    def static(self, max_rows: int = 60) -> None:
        """The papermill fallback: a names-per-class PNG and the candidate table (first ``max_rows``)."""
        import matplotlib.pyplot as plt

        from ovlab.widgets.display import show_static

        counts = [len(self.editor.synonyms(c).names) for c in self.editor.vocabulary]
        fig, ax = plt.subplots(figsize=(6, 2.5))
        ax.hist(counts, bins=range(1, max(counts) + 2), color="#4c72b0", align="left", rwidth=0.8)
        ax.set_xlabel("names per class")
        ax.set_ylabel("classes")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        show_static(buf.getvalue(), self.frame().head(max_rows),
                    title="Synonym curator (static view: open the notebook in JupyterLab to edit)")

    # ---------------------------------------------------------------------------------- the form
    def widget(self):
        """The ipywidgets form (built once)."""
        if self._widget is None:
            self._widget = self._build()
        return self._widget

    def _build(self):
        import ipywidgets as w

        self.filter = w.Dropdown(options=self.FILTERS, value="all classes", description="Show")
        self.threshold = w.FloatSlider(value=self.low_score, min=0.0, max=1.0, step=0.01, description="low score <",
                                       continuous_update=False)
        self.selector = w.Select(options=self.classes(), rows=12, description="Class",
                                 layout=w.Layout(width="320px"))
        self.senses_box = w.VBox()
        self.names_box = w.VBox()
        self.new_name = w.Text(placeholder="add a name", description="Add")
        self.add_button = w.Button(description="Add name", icon="plus")
        self.save_button = w.Button(description="Save", button_style="primary", icon="save")
        self.reload_button = w.Button(description="Reload", icon="refresh")
        self.status = w.HTML(value=f"Editing <code>{self.editor.path}</code>")
        self.filter.observe(lambda _c: self._refilter(), names="value")
        self.threshold.observe(lambda c: (setattr(self, "low_score", c["new"]), self._refilter()), names="value")
        self.selector.observe(lambda _c: self._show_class(), names="value")
        self.add_button.on_click(lambda _b: self._add())
        self.save_button.on_click(lambda _b: self.save())
        self.reload_button.on_click(lambda _b: self.reload())
        panel = w.VBox([w.HTML("<b>Senses</b> (keep = its lemmas are candidates)"), self.senses_box,
                        w.HTML("<b>Candidates</b> (checked = kept)"), self.names_box,
                        w.HBox([self.new_name, self.add_button])])
        root = w.VBox([w.HBox([self.filter, self.threshold]), w.HBox([self.selector, panel]),
                       w.HBox([self.save_button, self.reload_button]), self.status])
        root.add_class("ovlab-curator")
        self._show_class()
        return root

    def _refilter(self) -> None:
        current = self.selector.value
        options = self.classes(self.filter.value)
        self.selector.options = options
        if current in options:
            self.selector.value = current
        self._show_class()

    def _show_class(self) -> None:
        import ipywidgets as w

        cls = self.selector.value
        if cls is None:
            self.senses_box.children, self.names_box.children = (), ()
            return
        s = self.editor.synonyms(cls)
        senses = []
        for syn in self.editor.all_senses(cls):
            cb = w.Checkbox(value=syn.name() in s.senses, description=f"{syn.name()}: {syn.definition()}",
                            indent=False, layout=w.Layout(width="auto"))
            cb.observe(lambda c, n=syn.name(): self._op("keep_sense" if c["new"] else "drop_sense", n), names="value")
            senses.append(cb)
        names = []
        for r in candidate_rows(self.editor, cls, self.scores):
            score = "" if r.score is None else f" · score {r.score:.2f}"
            why = "" if r.kept else f" · removed by {r.reason}"
            cb = w.Checkbox(value=r.kept, description=f"{r.name} ({r.sense}{score}{why})", indent=False,
                            layout=w.Layout(width="auto"))
            cb.add_class("ovlab-candidate")
            cb.observe(lambda c, n=r.name: self._op("keep" if c["new"] else "drop", n), names="value")
            names.append(cb)
        self.senses_box.children = senses or [w.HTML("<i>not in WordNet</i>")]
        self.names_box.children = names or [w.HTML("<i>no candidate besides the class name</i>")]

    def _op(self, op: str, name: str) -> None:
        try:
            self.editor.apply(op, self.selector.value, name)
            self.status.value = f"{len(self.editor.ops)} unsaved change(s) in {len(self.editor.touched)} class(es)"
        except ValueError as exc:
            self.status.value = f"<span style='color:#b00'>{exc}</span>"
        self._show_class()

    def _add(self) -> None:
        if self.new_name.value.strip():
            self._op("add", self.new_name.value)
            self.new_name.value = ""

    def save(self) -> bool:
        """Save (the Save button); the outcome is shown in the status line. Returns success."""
        try:
            path = self.editor.save()
        except CurationError as exc:
            if self._widget is not None:
                self.status.value = f"<span style='color:#b00'>Not saved: {exc}</span>"
            return False
        if self._widget is not None:
            self.status.value = (f"Saved <code>{path}</code>. Run <code>dvc repro</code> to rebuild the synonym "
                                 "sets and what depends on them.")
        return True

    def reload(self) -> None:
        """Reload the file and replay unsaved changes (the Reload button)."""
        try:
            failed = self.editor.reload()
        except CurationError as exc:
            if self._widget is not None:
                self.status.value = f"<span style='color:#b00'>{exc}</span>"
            return
        if self._widget is not None:
            self.status.value = "Reloaded" + (f"; not replayed: {'; '.join(failed)}" if failed else "")
            self._refilter()

    def show(self, live: bool) -> None:
        """Display the live form (``live``) or the static fallback (:func:`ovlab.widgets.display.live_mode`)."""
        from IPython.display import display

        if live:
            display(self.widget())
        else:
            self.static()
