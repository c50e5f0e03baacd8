"""llem: measure what LLM inference costs, across backends, on Ray."""

__version__ = "0.1.0"
