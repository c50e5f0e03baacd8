"""What llem masks: the credentials it hands to workers, every variable named like one (it
hands those to no one), token shapes and URL passwords."""

from __future__ import annotations

import llem.credentials as creds


def test_variables_named_like_credentials_are_masked_too() -> None:
    found = creds.collect({"HF_TOKEN": "hf_PlantedTokenDoNotLeak0123456789abcd",
                           "DB_PASSWORD": "plain-password-1", "MY_API_KEY": "plain-key-12",
                           "HOME": "/home/someone-long"})
    assert set(found) == {"HF_TOKEN"}  # only the known ones go to workers
    text = creds.redact("a plain-password-1 b plain-key-12 c /home/someone-long")
    assert text == "a *** b *** c /home/someone-long"


TOK = "PlantedUserOnlyTok1234567"


def test_every_userinfo_of_a_url_or_address_is_masked() -> None:
    """A user alone (a token written as the user), a password alone or with its user,
    percent-encoded, in a URL or a bare host:port address; other shapes stay readable."""
    cases = {f"http://{TOK}@127.0.0.1:9": "http://***@127.0.0.1:9",
             f"'s3://{TOK}@bucket/x'": "'s3://***@bucket/x'",
             f"ray://:{TOK}@h:10001": "ray://:***@h:10001",
             f"https://u%40x:{TOK}%21@h/v1": "https://u%40x:***@h/v1",
             f"https://a@b{TOK}@h/x": "https://***@h/x",
             f"RAY_ADDRESS '{TOK}@127.0.0.1:9'": "RAY_ADDRESS '***@127.0.0.1:9'",
             f"at {TOK}@[::1]:6379.": "at ***@[::1]:6379.",
             f"':{TOK}@host:6379'": "':***@host:6379'"}
    for text, masked in cases.items():
        assert creds.mask_shapes(text) == masked, text
    for plain in ("git@github.com:org/repo", "x@y.com", "user@host", "http://@h:8000",
                  "vllm@sha256:0123abc", "http://u:***@h"):
        assert creds.mask_shapes(plain) == plain, plain
    assert creds.token_shaped(f"https://{TOK}@huggingface.co/org/m")
    assert not creds.token_shaped("user@host") and not creds.token_shaped("http://@h:1")


def test_secret_query_parameters_and_authorization_values_are_masked() -> None:
    text = (f"https://b.s3.amazonaws.com/x?X-Amz-Credential=AKID/1&X-Amz-Date=20250101&"
            f"X-Amz-Signature={TOK}&apikey={TOK}&limit=3")
    assert creds.mask_shapes(text) == ("https://b.s3.amazonaws.com/x?X-Amz-Credential=***&"
                                       "X-Amz-Date=***&X-Amz-Signature=***&apikey=***&limit=3")
    for header in (f"Authorization: Token {TOK}", f"'authorization': 'bearer {TOK}'",
                   f"authorization={TOK}"):
        assert TOK not in creds.mask_shapes(header), header


def test_a_url_secret_seen_once_is_masked_without_its_url() -> None:
    """A library may quote the key of `s3://KEY:SECRET@b` alone, or percent-decoded."""
    creds.remember(creds.url_secrets(f"s3://AKID:{TOK}%2Fx@bucket/p"))
    assert creds.redact(f"denied for {TOK}/x and {TOK}%2Fx") == "denied for *** and ***"
