from __future__ import annotations

import pytest

HOME = (60.1699, 24.9384)  # a Helsinki address


@pytest.fixture
def h(client, force):
    """Auth headers per test user, logged in once."""
    cache: dict[str, dict] = {}

    def headers(user: str) -> dict:
        if user not in cache:
            cache[user] = force.headers(client, user)
        return cache[user]

    return headers
