"""llem's version, in one place (the package, the CLI and every result row read it)."""

__version__ = "0.1.0"
