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
