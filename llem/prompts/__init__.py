"""Prompts: the set shipped with llem and user files (files), and a dataset setting resolved
into the texts a job runs, from the shipped set, a file or a Hugging Face dataset (dataset).

No torch or transformers here: the driver loads prompts before any backend is imported.
"""
