"""Helper commands that need no cluster."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("tiny-model")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Seed of the random weights.")
@click.option("--force", is_flag=True, help="Rebuild even if DIRECTORY holds a model.")
def tiny_model(directory: Path, seed: int, force: bool) -> None:
    """Build a tiny random-weight Llama model with a locally trained tokenizer, offline.

    For demos and tests: it loads with transformers and vLLM like any hub model.
    Grid files can also name it as `llem:tiny` (built on first use in ~/.cache/llem).
    """
    from llem.tiny_model import build_tiny_model

    path = build_tiny_model(directory, seed=seed, force=force)
    click.echo(str(path))
