"""A store URL's credential is masked wherever llem shows or keeps the store: its uri (in
messages, the checks cache, reports) and the commands `llem run` suggests next."""

from __future__ import annotations

import pytest

from llem.cli.stats_table import store_option
from llem.store.schema import StoreError
from llem.store.store import Store

TOK = "PlantedUserOnlyTok1234567"


@pytest.mark.parametrize(("uri", "shown"), [(f"mock://{TOK}@host/x", "mock://***@host/x"),
                                            (f"mock://u:{TOK}@host/x", "mock://u:***@host/x")])
def test_a_store_keeps_no_credential_of_its_url(uri: str, shown: str) -> None:
    st = Store(uri)
    assert st.uri == shown and st.checks.uri == shown
    assert TOK not in store_option(uri) and shown in store_option(uri)


@pytest.mark.parametrize("text", [f" s3://{TOK}@b/x", f"s3://{TOK}@b/x\t", f"foo://{TOK}@b/x"])
def test_a_store_refused_by_its_text_is_shown_masked(text: str) -> None:
    with pytest.raises(StoreError) as err:
        Store(text)
    assert TOK not in str(err.value) and "***@b/x" in str(err.value)
