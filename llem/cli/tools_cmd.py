"""Helper commands that need no cluster."""

from __future__ import annotations

import math
from pathlib import Path

import click

from llem.errors import UserError
from llem.models.tiny import build_tiny_model


def _std(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """A standard deviation in (0, 1] (transformers' own bound); nan passes FloatRange."""
    if not math.isfinite(value) or not 0 < value <= 1:
        raise click.BadParameter(f"{value} is not in (0, 1]")
    return value


@click.command("tiny-model")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**63 - 1),
              help="Seed of the random weights.")
@click.option("--hidden-size", default=128, show_default=True,
              type=click.IntRange(64, 16384))
@click.option("--layers", default=2, show_default=True, type=click.IntRange(1, 128),
              help="Decoder layers.")
@click.option("--heads", default=2, show_default=True, type=click.IntRange(1, 256),
              help="Attention heads (head_dim >= 64).")
@click.option("--intermediate-size", default=256, show_default=True,
              type=click.IntRange(1, 65536))
@click.option("--init-std", default=0.2, show_default=True, callback=_std,
              help="Weight init std; ~0.2 makes greedy output vary on tiny models, use 0.02 "
              "for large ones (bf16 overflows otherwise).")
@click.option("--force", is_flag=True, help="Rebuild even if DIRECTORY holds a model.")
def tiny_model(directory: Path, seed: int, hidden_size: int, layers: int, heads: int,
               intermediate_size: int, init_std: float, force: bool) -> None:
    """Build a random-weight Llama model with a locally trained tokenizer, offline.

    For demos and tests: it loads with transformers and vLLM like any hub model. The
    defaults make a tiny one; larger sizes load a GPU (e.g. --hidden-size 2048 --layers 16
    --heads 16 --intermediate-size 5632: about 0.8B parameters). Grid files can also name
    the default one `llem:tiny` (built on first use in ~/.cache/llem). Sizes over 8B
    parameters, or more than this machine's memory can initialise (4 bytes a parameter),
    are refused before anything is built.
    """
    if directory.exists() and not directory.is_dir():  # a device passed file_okay=False:
        # the build moved /dev/null aside, then removed it
        raise UserError(f"tiny-model {directory} is not a folder (a device, pipe or "
                        "socket): give a folder to build the model in")
    try:
        path = build_tiny_model(directory, seed=seed, hidden_size=hidden_size,
                                num_layers=layers, num_heads=heads,
                                intermediate_size=intermediate_size, init_std=init_std,
                                force=force)
    except ValueError as exc:  # a shape it cannot build, a folder holding something else
        raise UserError(f"tiny-model {directory}: {exc}") from None
    except OSError as exc:  # /proc/x, a read-only mount, a full disk: was a raw traceback
        raise UserError(f"tiny-model {directory}: cannot write there "
                        f"({exc.strerror or type(exc).__name__}): give a folder you can write "
                        "to") from None
    click.echo(str(path))
