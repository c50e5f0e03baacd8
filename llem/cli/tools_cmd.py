"""Helper commands that need no cluster."""

from __future__ import annotations

from pathlib import Path

import click

from llem.models.tiny import build_tiny_model


@click.command("tiny-model")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Seed of the random weights.")
@click.option("--hidden-size", default=128, show_default=True)
@click.option("--layers", default=2, show_default=True, help="Decoder layers.")
@click.option("--heads", default=2, show_default=True, help="Attention heads (head_dim >= 64).")
@click.option("--intermediate-size", default=256, show_default=True)
@click.option("--init-std", default=0.2, show_default=True,
              help="Weight init std; ~0.2 makes greedy output vary on tiny models, use 0.02 "
              "for large ones (bf16 overflows otherwise).")
@click.option("--force", is_flag=True, help="Rebuild even if DIRECTORY holds a model.")
def tiny_model(directory: Path, seed: int, hidden_size: int, layers: int, heads: int,
               intermediate_size: int, init_std: float, force: bool) -> None:
    """Build a random-weight Llama model with a locally trained tokenizer, offline.

    For demos and tests: it loads with transformers and vLLM like any hub model. The
    defaults make a tiny one; larger sizes load a GPU (e.g. --hidden-size 2048 --layers 16
    --heads 16 --intermediate-size 5632: about 0.8B parameters). Grid files can also name
    the default one `llem:tiny` (built on first use in ~/.cache/llem).
    """
    path = build_tiny_model(directory, seed=seed, hidden_size=hidden_size, num_layers=layers,
                            num_heads=heads, intermediate_size=intermediate_size,
                            init_std=init_std, force=force)
    click.echo(str(path))
