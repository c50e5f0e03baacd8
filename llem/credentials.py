"""Credentials (HF token, cloud keys): read from the environment or a file, handed to worker
actors as a constructor argument, and masked wherever text leaves llem.

Why not Ray's runtime_env env_vars: Ray writes a runtime_env into its logs, the dashboard and
a submitted job's metadata. An actor's constructor arguments are only pickled into the
object store, so the token reaches the worker process and nothing that Ray displays.

Sources, later wins: the environment (ENV_NAMES), HF_TOKEN_PATH (huggingface_hub's token
file), LLEM_SECRETS_FILE (KEY=VALUE lines, `#` comments). A grid file must not hold one:
llem.config refuses it (it would be hashed into job ids and stored with every row).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote

from llem.errors import UserError

ENV_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_TOKEN", "NGC_API_KEY",
             "WANDB_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
             "AZURE_STORAGE_KEY", "OPENAI_API_KEY")
MASK = "***"
MIN_LEN = 8  # shorter values are not masked (they would mask ordinary words)
# Shapes of well-known tokens, masked even when llem was not told about them: Hugging Face,
# NVIDIA, OpenAI/Anthropic, AWS (long-lived and session), GitHub, GitLab, Slack, Google API
# keys, JWTs and PEM private keys. A shape is bounded by non-alphanumerics, so a token glued
# to text by '_' (`a_hf_...`, `hf_..._x`) is still one.
PATTERNS = re.compile(r"(?<![A-Za-z0-9])(?:hf_[A-Za-z0-9]{20,}|nvapi-[A-Za-z0-9_-]{20,}|"
                      r"sk-[A-Za-z0-9_-]{20,}|(?:AKIA|ASIA)[0-9A-Z]{16}|"
                      r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|"
                      r"glpat-[A-Za-z0-9_-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|"
                      r"AIza[0-9A-Za-z_-]{35}|"
                      r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}|"
                      r"-----BEGIN [A-Z ]*PRIVATE KEY-----|"
                      r"(?:Basic|(?i:bearer))\s+[A-Za-z0-9._~+/-]{16,}=*|"
                      r"(?i:authorization)[\"']?\s*[:=]\s*[\"']?(?:\w+\s+)?[^\s'\",;}]{8,})"
                      r"(?![A-Za-z0-9])")
# The userinfo of a URL (`https://TOKEN@host`, `s3://KEY:SECRET@bucket`, `http://:PW@host`,
# percent-encoded or not), up to the last `@` before the path, as urllib reads it: a password
# is masked and its user stays readable; a user alone is masked (git hosts take a token so).
USERINFO = re.compile(r"(?<=://)([^/\s?#'\"]+)@")
# A credential in a URL's query: a presigned S3 URL's X-Amz-Signature (every X-Amz-*), an
# Azure SAS `sig`, `?token=`, `?apikey=`, pyarrow's own `s3://b/x?access_key=..&secret_key=..`
# (the value is masked).
QUERY_SECRET = re.compile(r"(?i)([?&](?:x-amz-[\w-]+|(?:[\w.-]*[_.-])?(?:token|key|apikey|"
                          r"secret|sig|signature|password|passwd|pwd|credential|auth))"
                          r"(?:[_.-][\w.-]*)?=)([^&#\s'\"]+)")
# The same without a scheme, as a word of its own (RAY_ADDRESS `user:pass@host:6379`,
# `:pass@host`); a user alone only before host:port (`TOKEN@10.0.0.5:6379`: `git@host:org/x`
# and mail addresses stay).
BARE_USERINFO = re.compile(r"(?<![^\s'\"(=])([^/\s:@'\"]*):([^/\s@'\"*]+)@(?=[\w\[])")
BARE_USER = re.compile(r"(?<![^\s'\"(=])[^/\s:@'\"*]+@"
                       r"(?=(?:[\w.-]+|\[[^\]\s]*\]):\d{1,5}(?!\w))")
# Keys whose text value is a credential (pad_token/eos_token are tokenizer settings: allowed).
SECRET_KEY = re.compile(r"(?i)^(?:hf_|hub_|auth_|access_|api_|use_auth_|client_|aws_|session_|"
                        r"refresh_|id_|oauth_|bearer_)?(?:token|api_?key|password|passwd|"
                        r"secret|secret_key|access_key|private_key|secret_access_key|"
                        r"authorization|bearer|credentials?|connection_string)$")
# Environment variable names that hold a credential whatever their value: ENV_NAMES and names
# shaped like one (*_TOKEN, *_KEY, *SECRET*, *PASSWORD*, *CREDENTIAL*, *API_KEY*, ...).
SECRET_ENV = re.compile(r"(?i)(?:^|_)(?:TOKEN|KEY|AUTH|PASS)$|SECRET|PASSWORD|PASSWD|"
                        r"CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CONNECTION_?STRING")
NOT_SECRET_ENV = frozenset({"HF_HUB_DISABLE_IMPLICIT_TOKEN",  # a switch, not a credential
                            "LLEM_SECRETS_FILE", "HF_TOKEN_PATH"})  # paths to one

# Variables that hold the credential of a service other than an OpenAI-compatible server: a
# grid may not name one as the endpoint's key (it would be sent to base_url as a bearer
# key: a grid from someone else could aim it at their own server).
OTHER_SERVICE_ENV = re.compile(r"(?i)^(?:HF_|HUGGING_?FACE|HUB_|AWS_|AZURE_|GOOGLE_|GCP_|GCS_|"
                               r"GITHUB_|GH_|GITLAB_|GL_|WANDB_|NGC_|NVIDIA_|SLACK_|DOCKER_|"
                               r"ANTHROPIC_|COHERE_|MISTRAL_|TOGETHER_|RAY_|SSH_|GPG_|"
                               r"KUBE|NPM_|PYPI_|TWINE_|DATABASE_|DB_|POSTGRES|MYSQL|REDIS)")
_known: set[str] = set()
_collected = False


def collect(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The credentials this process can see, by variable name; each is remembered for redact
    (first: a refused one is still masked, wherever an error or a log might show it)."""
    env = os.environ if environ is None else environ
    found = {k: env[k] for k in ENV_NAMES if env.get(k)}
    remember([*found.values(), *(part for v in found.values() for part in v.splitlines())])
    # any variable named like a credential (DB_PASSWORD, MY_API_KEY) is masked too, though
    # not handed to workers: llem prints nothing of it
    remember(v for k, v in env.items() if secret_env_name(k))
    for k, v in found.items():  # a newline pasted into a token: refused, as in the files
        if _control(v.strip()):
            raise UserError(f"{k}: the value holds a control character such as a newline "
                            "(not shown: it is a credential); set it again on one line")
    token_path = env.get("HF_TOKEN_PATH")
    if token_path:  # named but missing or a folder: the token the user meant is not used
        token = small_text(Path(token_path), "HF_TOKEN_PATH").strip()
        remember([token, *token.splitlines()])
        if _control(token):
            raise UserError(f"HF_TOKEN_PATH {token_path}: holds more than one line of a "
                            "token (control characters; not shown)")
        found["HF_TOKEN"] = token
    secrets_file = env.get("LLEM_SECRETS_FILE")
    if secrets_file:
        found.update(read_secrets_file(Path(secrets_file)))
    return found


def read_secrets_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; a missing or malformed file is a UserError that shows no value."""
    text = small_text(path, "LLEM_SECRETS_FILE").removeprefix("\ufeff")  # an editor's BOM
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise UserError(f"LLEM_SECRETS_FILE {path}:{n}: expected KEY=VALUE (the line is "
                            "not shown: it may hold a secret)")
        value = value.strip().strip("'\"")
        remember([value])
        if _control(value):  # a NUL killed every worker
            raise UserError(f"LLEM_SECRETS_FILE {path}:{n}: the value holds a control "
                            "character (the line is not shown: it may hold a secret)")
        out[key.strip()] = value
    return out


def _control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


MAX_SECRETS_BYTES = 1 << 20


def small_text(path: Path, name: str) -> str:
    """The text of a credential file named by variable name: a regular file of at most
    MAX_SECRETS_BYTES (a FIFO blocked every error message for ever, /dev/zero filled the
    memory), else a UserError that shows none of it."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{name} {path} is not a regular file: point it at a file of "
                            "KEY=VALUE lines" if name == "LLEM_SECRETS_FILE" else
                            f"{name} {path} is not a regular file: point it at the token file")
        if st.st_size > MAX_SECRETS_BYTES:
            raise UserError(f"{name} {path} is {st.st_size} bytes, more than a credential "
                            f"file holds (at most {MAX_SECRETS_BYTES}): is it the right file?")
        with open(path, "rb") as f:
            return f.read(MAX_SECRETS_BYTES + 1).decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{name} {path}: cannot read it ({type(exc).__name__})") from None


def remember(values: Iterable[object]) -> None:
    """Values to mask from now on in this process."""
    for v in values:
        if isinstance(v, str) and len(v) >= MIN_LEN:
            _known.add(v)


def install(found: dict[str, str]) -> None:
    """In a worker: set the credentials where libraries look for them, and mask them."""
    remember(found.values())
    for k, v in found.items():
        os.environ[k] = v


def redact(text: str) -> str:
    """text with every known credential and token-shaped string replaced by ***."""
    global _collected
    if not _collected:  # this process's own environment, once
        _collected = True
        with contextlib.suppress(Exception):
            collect()
    if not text:
        return text
    for v in sorted(_known, key=len, reverse=True):
        text = text.replace(v, MASK)
    return mask_shapes(text)


def looks_secret(key: str, value: object) -> bool:
    """A grid value that is a credential: a secret-named key with text, or a token shape."""
    if isinstance(value, str):
        return bool(secret_name(key) and value.strip()) or token_shaped(value)
    return False


def secret_name(key: str) -> bool:
    """Is key (a dotted path's last part counts) the name of a setting that takes a
    credential as text (token, api_key, password, ...)?"""
    return SECRET_KEY.match(key.rsplit(".", 1)[-1]) is not None


def token_shaped(text: str) -> bool:
    """Does text hold a string shaped like a well-known token (hf_..., sk-..., AKIA...), or
    a URL with a user or password, or a secret query parameter?"""
    return PATTERNS.search(text) is not None or QUERY_SECRET.search(text) is not None or \
        any(_userinfo(m) != m.group(0) for m in USERINFO.finditer(text))


def secret_env_name(name: str) -> bool:
    """Is name an environment variable that holds a credential (whatever its value)?"""
    if name.upper() in NOT_SECRET_ENV:
        return False
    return name.upper() in ENV_NAMES or SECRET_ENV.search(name) is not None


def mask_shapes(text: str) -> str:
    """text with token-shaped strings and the credentials of URLs and addresses (userinfo,
    secret query parameters) replaced by *** (no environment is read)."""
    text = USERINFO.sub(_userinfo, PATTERNS.sub(MASK, text))
    text = QUERY_SECRET.sub(rf"\1{MASK}", text)
    return BARE_USER.sub(f"{MASK}@", BARE_USERINFO.sub(rf"\1:{MASK}@", text))


def _userinfo(m: re.Match[str]) -> str:
    """A URL's `user:password@` with the password masked, `user@` with the user masked."""
    user, sep, password = m.group(1).partition(":")
    if password:
        return f"{user}:{MASK}@"
    return f"{MASK}{sep}@" if user else m.group(0)


def url_secrets(text: str) -> list[str]:
    """What mask_shapes hides of text's URLs and addresses (passwords, a lone user, secret
    query values), as written and percent-decoded: remembered, a library that echoes one
    without its URL (an S3 key in an error) is masked too."""
    found = [m.group(1).partition(":")[2] or m.group(1).partition(":")[0]
             for m in USERINFO.finditer(text)]
    found += [m.group(2) for m in QUERY_SECRET.finditer(text)]
    found += [m.group(2) for m in BARE_USERINFO.finditer(text)]
    found += [m.group(0)[:-1] for m in BARE_USER.finditer(text)]
    return [v for f in found if f != MASK for v in {f, unquote(f)}]


def credential_files(environ: dict[str, str] | None = None) -> set[Path]:
    """Files that hold credentials where llem and the libraries it drives look for them:
    HF_TOKEN_PATH, LLEM_SECRETS_FILE, the Hugging Face token file, and the usual git, netrc
    and cloud credential files. A grid may not name one as data (its text would be sent to
    a model or an endpoint)."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    hf_home = Path(env.get("HF_HOME") or Path(env.get("XDG_CACHE_HOME") or home / ".cache")
                   / "huggingface")
    found = [env.get("HF_TOKEN_PATH"), env.get("LLEM_SECRETS_FILE"), hf_home / "token",
             home / ".netrc", home / ".git-credentials", home / ".aws" / "credentials",
             home / ".docker" / "config.json", env.get("AWS_SHARED_CREDENTIALS_FILE"),
             env.get("GOOGLE_APPLICATION_CREDENTIALS")]
    out: set[Path] = set()
    for f in found:
        if f:
            with contextlib.suppress(OSError, RuntimeError):
                out.add(Path(f).expanduser().resolve())
    return out


def other_service_env(name: str) -> bool:
    """Whether the variable name holds another service's credential (OTHER_SERVICE_ENV, or
    one of ENV_NAMES but OPENAI_API_KEY, the OpenAI-compatible servers' own)."""
    return name != "OPENAI_API_KEY" and (name in ENV_NAMES or bool(
        OTHER_SERVICE_ENV.match(name)))
