"""Datasets: category catalogs, readers of the standard layouts, and the procedural embedded set."""

from ovlab.data.categories import Category, CategoryList, load_categories
from ovlab.data.errors import CorruptFileError, DatasetNotFoundError

__all__ = ["Category", "CategoryList", "CorruptFileError", "DatasetNotFoundError", "load_categories"]
