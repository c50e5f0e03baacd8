"""Test helpers (no tests here): paths, the CLI as a subprocess, a Ray head, stores with
known contents, fault scripts, and data files (support/data/)."""
