"""Datasets: category catalogs, readers of the standard layouts, and the procedural embedded set."""

from .categories import Category, CategoryList, load_categories
from .errors import CorruptFileError, DatasetNotFoundError

__all__ = ["Category", "CategoryList", "CorruptFileError", "DatasetNotFoundError", "load_categories"]
