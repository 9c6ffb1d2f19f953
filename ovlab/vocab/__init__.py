"""Vocabulary: class-name normalisation, offline WordNet, synonym curation (GKC §3.1)."""

from ovlab.data.names import normalize_class_name, split_multi_name
from ovlab.vocab.wordnet import WordNetNotFoundError, find_wordnet, load_wordnet

__all__ = [
    "WordNetNotFoundError",
    "find_wordnet",
    "load_wordnet",
    "normalize_class_name",
    "split_multi_name",
]
