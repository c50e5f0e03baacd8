"""The grid's `environments:` section: which Python environment each backend's workers use.

Only its shape is checked here, with every value a process or Ray could not take refused at
load time (an env var name with '=', an image reference with shell characters, a python path
under an unknown ~user); llem.envs.environments resolves a choice into a Ray runtime_env and
checks that the environment exists and works.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

KINDS = ("current", "venv", "pip", "uv", "image")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")  # what a process environment holds
# an OCI image reference: [registry[:port]/]path[:tag][@digest]; no spaces or shell characters
IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}")
VARIANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _env_name(name: str) -> str:
    if not ENV_NAME.fullmatch(name):
        raise ValueError("an environment variable name is letters, digits and '_', not "
                         "starting with a digit (a process environment cannot hold this one)")
    return name


def _env_value(value: str) -> str:
    if "\x00" in value:
        raise ValueError("an environment variable's value cannot hold a NUL character")
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]
EnvValue = Annotated[str, AfterValidator(_env_value)]


def _text(v: str, what: str) -> str:
    if not v.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in v):
        raise ValueError(f"{what} must be text on one line, not empty")
    return v


class EnvChoice(BaseModel):
    """A grid's `environments.<backend>` entry; unset fields come from jobs/<backend>/."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    kind: Literal["current", "venv", "pip", "uv", "image"] | None = None
    variant: str | None = None  # requirements variant (cuda | cpu); default: cuda if a GPU
    python: str | None = None  # venv: an interpreter of a venv built elsewhere
    image_uri: str | None = None
    packages: list[str] | None = None  # pip/uv: instead of the variant's requirements file
    env_vars: dict[EnvName, EnvValue] = Field(default_factory=dict)

    @field_validator("variant")
    @classmethod
    def _variant(cls, v: str | None) -> str | None:
        if v is not None and not VARIANT.fullmatch(v):
            raise ValueError("must be a name (letters, digits, '_', '-', '.'), "
                             "e.g. cuda or cpu")
        return v

    @field_validator("python")
    @classmethod
    def _python(cls, v: str | None) -> str | None:
        if v is None:
            return v
        _text(v, "python")
        try:
            Path(v).expanduser()
        except RuntimeError:  # ~nosuchuser
            raise ValueError(f"cannot expand '{v.split('/', 1)[0]}': no such user "
                             "(give the interpreter's full path)") from None
        return v

    @field_validator("image_uri")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        if v is not None and not IMAGE_REF.fullmatch(v):
            raise ValueError("must be an image reference such as "
                             "registry/name:tag or name@sha256:... (letters, digits and "
                             "._/:@+-; no spaces or shell characters)")
        return v

    @field_validator("packages")
    @classmethod
    def _packages(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("an empty list installs nothing: remove it to install the "
                             "variant's requirements, or list packages")
        for p in v or []:
            _text(p, "each package")
            if p.lstrip().startswith("-"):  # pip reads the list as a requirements file
                raise ValueError(f"each package is a requirement (name, version, URL), not a "
                                 f"pip option (got {p.split()[0][:40]!r}: an index, a "
                                 "requirements file or an editable path would change what "
                                 "installs where)")
        return v

