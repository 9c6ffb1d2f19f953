"""Data: the SG-IoU association maps (JSON) and their curated overrides (YAML)."""
