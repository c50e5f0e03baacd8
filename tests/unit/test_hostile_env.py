"""Issue 18, round four: what llem reads from its environment before anything starts. Folder
variables that name a file, a folder under a file, one that cannot be written, or a relative
path (workers run elsewhere); credential files that are a FIFO, a device or huge; Ray
addresses with IPv6 literals; a password in a schemeless address."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from llem.cli.run_cmd import check_address, split_address
from llem.credentials import collect, mask_shapes, read_secrets_file, redact, small_text
from llem.errors import UserError
from llem.paths import check_roots, folder_problem


@pytest.mark.parametrize(("name", "value", "want"), [
    ("LLEM_CACHE", "{f}", "LLEM_CACHE={f} is a file, not a folder"),
    ("LLEM_ENVS_DIR", "{f}/envs", "LLEM_ENVS_DIR={f}/envs is under {f}, which is a file"),
    ("XDG_CACHE_HOME", "{f}", "XDG_CACHE_HOME={f} is a file, not a folder"),
    ("LLEM_LOG_DIR", "{f}/a/b", "LLEM_LOG_DIR={f}/a/b is under {f}, which is a file"),
    ("LLEM_JOBS_DIR", "{d}/none", "LLEM_JOBS_DIR={d}/none does not exist"),
    ("LLEM_CACHE", "{d}/dangling", "is a dangling link"),
])
def test_a_folder_variable_that_cannot_be_a_folder(name: str, value: str, want: str,
                                                   tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    fill = {"f": str(f), "d": str(tmp_path)}
    with pytest.raises(UserError) as exc:
        check_roots({name: value.format(**fill)})
    msg = str(exc.value)
    assert want.format(**fill) in msg and "unset it" in msg, msg
    assert sorted(tmp_path.iterdir()) == sorted([f, tmp_path / "dangling"])  # nothing made


@pytest.mark.skipif(not Path("/proc/1").is_dir() or os.access("/proc/1", os.W_OK),
                    reason="needs a folder this user cannot write")
def test_a_folder_that_cannot_be_made_is_refused() -> None:
    assert folder_problem(Path("/proc/1/llem-cache")) == \
        "is not writable (/proc/1, where it would be made)"


def test_good_and_relative_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"LLEM_CACHE": "rel/cache", "LLEM_ENVS_DIR": str(tmp_path / "new" / "envs"),
           "LLEM_JOBS_DIR": str(tmp_path), "LLEM_LOG_DIR": ""}
    check_roots(env)
    # a worker runs in Ray's folder: a relative cache became another cache there
    assert env["LLEM_CACHE"] == str(tmp_path / "rel" / "cache")
    assert not (tmp_path / "rel").exists() and not (tmp_path / "new").exists()


@pytest.mark.parametrize("kind", ["fifo", "folder", "device", "huge"])
def test_a_credential_file_that_is_not_one(kind: str, tmp_path: Path) -> None:
    path = {"fifo": tmp_path / "ff", "folder": tmp_path, "device": Path("/dev/zero"),
            "huge": tmp_path / "big"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    if kind == "huge":
        path.write_bytes(b"HF_TOKEN=" + b"x" * (2 << 20))
    with pytest.raises(UserError) as exc:  # a FIFO blocked for ever, /dev/zero filled memory
        read_secrets_file(path)
    assert str(exc.value).startswith(f"LLEM_SECRETS_FILE {path} is "), str(exc.value)
    assert "xxxx" not in str(exc.value)
    with pytest.raises(UserError, match="HF_TOKEN_PATH"):
        small_text(path, "HF_TOKEN_PATH")


def test_a_password_in_an_address_without_scheme_is_masked() -> None:
    assert mask_shapes("RAY_ADDRESS 'user:PlantedTokPw@host:6379'") == \
        "RAY_ADDRESS 'user:***@host:6379'"
    for plain in ("git@github.com:org/repo", "10.0.0.5:6379", "a:b", "[::1]:6379"):
        assert mask_shapes(plain) == plain


@pytest.mark.parametrize(("address", "parsed"), [
    ("10.0.0.5:6379", ("10.0.0.5", 6379)), ("head-1.local:6379", ("head-1.local", 6379)),
    ("[::1]:6379", ("::1", 6379)), ("ray://[2001:db8::5]:10001", ("2001:db8::5", 10001)),
    ("[fe80::1%eth0]:6379", ("fe80::1%eth0", 6379)),
    ("::1:6379", None), ("[::1]", None), ("[::1]:0", None), ("[::1]:65536", None),
    ("[zz::1]:6379", None), ("[::1:6379", None), ("http://[::1]:8265", None),
    ("user:pw@host:6379", None), ("host:6379/x", None),
])
def test_ray_addresses_are_split_as_ray_splits_them(address: str,
                                                    parsed: tuple[str, int] | None) -> None:
    assert split_address(address) == parsed


def _listener(family: socket.AddressFamily, host: str) -> socket.socket:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.listen(1)
    return s


@pytest.mark.parametrize(("family", "host"), [(socket.AF_INET, "127.0.0.1"),
                                              (socket.AF_INET6, "::1")])
def test_an_address_where_something_listens_passes(family: socket.AddressFamily, host: str,
                                                   ) -> None:
    try:
        s = _listener(family, host)
    except OSError:
        pytest.skip(f"no {host} here")
    with s:
        port = s.getsockname()[1]
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        check_address(shown, "--address")  # accepted: something answers
        check_address(f"ray://{shown}", "--address")
    with pytest.raises(UserError, match=r"nothing answers at .*is the Ray head running"):
        check_address(shown, "--address")  # closed now


def test_an_ipv6_address_without_brackets_says_how_to_write_it() -> None:
    with pytest.raises(UserError) as exc:
        check_address("::1:6379", "RAY_ADDRESS")
    assert str(exc.value).endswith("(an IPv6 address goes in brackets: [::1]:6379)")


def test_a_secret_with_a_control_character_is_refused_unshown(tmp_path: Path) -> None:
    """A NUL in a value killed every worker (os.environ refuses it) with raw tracebacks."""
    f = tmp_path / "secrets"
    f.write_text("A_TOKEN=fine-value-1\nHF_TOKEN=Planted\x00TokValue\n")
    with pytest.raises(UserError) as exc:
        read_secrets_file(f)
    assert str(exc.value) == f"LLEM_SECRETS_FILE {f}:2: the value holds a control character " \
        "(the line is not shown: it may hold a secret)"


def test_a_credential_variable_with_a_newline_is_refused_and_still_masked() -> None:
    """HF_TOKEN with a pasted newline was handed on (the secrets file already refused it)."""
    token = "hf_PlantedTokPartOne123\nPlantedTokPartTwo456"
    with pytest.raises(UserError) as exc:
        collect({"HF_TOKEN": token})
    assert str(exc.value).startswith("HF_TOKEN: the value holds a control character")
    assert "Planted" not in str(exc.value)
    assert "Planted" not in redact(f"seen: {token} / {token.splitlines()[1]}")


def test_a_token_file_named_but_missing_or_a_folder_is_refused(tmp_path: Path) -> None:
    """HF_TOKEN_PATH naming nothing was ignored: the token the user meant was never used."""
    for path in (tmp_path / "nope", tmp_path):
        with pytest.raises(UserError, match="HF_TOKEN_PATH"):
            collect({"HF_TOKEN_PATH": str(path)})


def test_a_secrets_file_saved_with_a_bom_is_read(tmp_path: Path) -> None:
    f = tmp_path / "secrets"
    f.write_bytes("\ufeffHF_TOKEN=PlantedTokBom0123\n".encode())
    assert read_secrets_file(f) == {"HF_TOKEN": "PlantedTokBom0123"}
