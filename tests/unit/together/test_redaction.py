"""The API key never reaches an error message, even when a server echoes it cut short.

Found by tests/faults/test_credentials.py: aiohttp (and so the simulator, and any aiohttp-based gateway)
answers a header too long for it with `400 Got more than 8190 bytes when reading: b'Bearer <the key's
first 80 characters>...'`; the client redacted only the whole key, so the prefix went into the
resource's Stalled message, its Warning event and the operator's log.
"""

import httpx
import pytest

from together_operator.together import PermanentError, TogetherClient

LONG_KEY = "tk-live-" + "0123456789abcdef" * 4


def _client(response: httpx.Response, key: str = LONG_KEY) -> TogetherClient:
    return TogetherClient(
        "https://api.example.test/v1", key, transport=httpx.MockTransport(lambda _: response)
    )


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(
            httpx.Response(
                400,
                text=f"Got more than 8190 bytes when reading: b'Bearer {LONG_KEY[:40]}...'.",
                headers={"Content-Type": "text/plain"},
            ),
            id="plain-text-body",
        ),
        pytest.param(
            httpx.Response(400, json={"error": {"message": f"bad token {LONG_KEY[:20]}", "type": "x"}}),
            id="error-body",
        ),
    ],
)
async def test_a_key_echoed_cut_short_is_redacted(response: httpx.Response) -> None:
    async with _client(response) as client:
        with pytest.raises(PermanentError) as caught:
            await client.list_endpoints()

    assert LONG_KEY[:8] not in str(caught.value)
    assert LONG_KEY[:8] not in repr(caught.value)
    assert "<redacted>" in str(caught.value)


async def test_text_that_merely_shares_a_few_characters_with_the_key_is_kept() -> None:
    response = httpx.Response(400, json={"error": {"message": "tk-live keys are rejected here", "type": "x"}})
    async with _client(response) as client:
        with pytest.raises(PermanentError, match="tk-live keys are rejected here"):
            await client.list_endpoints()


async def test_a_short_key_is_redacted_whole_only() -> None:
    """Prefixes of short keys are too common to strip (a test key like `sim-key`)."""
    response = httpx.Response(400, json={"error": {"message": "sim-key rejected; simulator", "type": "x"}})
    async with _client(response, key="sim-key") as client:
        with pytest.raises(PermanentError) as caught:
            await client.list_endpoints()

    assert "<redacted> rejected; simulator" in str(caught.value)
