"""A pseudonym key for tests, so fixtures hold pseudonyms as production stores them."""

from adserve.privacy.pseudonyms import Pseudonymizer

TEST_PSEUDONYM_KEY = b"test pseudonym key, 32 bytes at least"
PSEUDONYMS = Pseudonymizer(TEST_PSEUDONYM_KEY)


def pseudonym(listener_id: str) -> str:
    return PSEUDONYMS.listener(listener_id)
