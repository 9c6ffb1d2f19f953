"""The ``synonym_score`` params section: params.yaml validates, defaults are the embedded profile, strictness."""

from __future__ import annotations

import pytest

from ovlab.config import ParamsError, load_params, stage_params
from ovlab.config.synonym_score import SynonymScoreParams


def test_params_yaml_section_matches_the_defaults(repo_root):
    cfg = load_params(repo_root / "params.yaml").synonym_score
    assert cfg == SynonymScoreParams()
    assert cfg.clip.model == "ovlab-tiny-vit" and cfg.clip.pretrained is None
    assert "pretrained" in cfg.clip.model_fields_set   # written explicitly, as the untrained model requires
    assert cfg.synonyms == load_params(repo_root / "params.yaml").synonyms.output


@pytest.mark.parametrize("section,key", [
    ({"crop": "box"}, "synonym_score.crop"),
    ({"clip": {"modle": "RN50"}}, "synonym_score.clip.modle"),
    ({"temperature": 0.0}, "synonym_score.temperature"),
    ({"batch_size": "8"}, "synonym_score.batch_size"),
    ({"data": {"max_images": 0}}, "synonym_score.data.max_images"),
])
def test_bad_values_name_the_key(section, key):
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        stage_params("synonym_score", {}, section)
