VERSION = "0.1.0"
"""This distribution's version (pyproject.toml)."""
