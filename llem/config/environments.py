"""The grid's `environments:` section: which Python environment each backend's workers use.

Only its shape is checked here; llem.envs.environments resolves a choice into a Ray runtime_env and
checks that the environment exists and works.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

KINDS = ("current", "venv", "pip", "uv", "image")


class EnvChoice(BaseModel):
    """A grid's `environments.<backend>` entry; unset fields come from jobs/<backend>/."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["current", "venv", "pip", "uv", "image"] | None = None
    variant: str | None = None  # requirements variant (cuda | cpu); default: cuda if a GPU
    python: str | None = None  # venv: an interpreter of a venv built elsewhere
    image_uri: str | None = None
    packages: list[str] | None = None  # pip/uv: instead of the variant's requirements file
    env_vars: dict[str, str] = Field(default_factory=dict)
