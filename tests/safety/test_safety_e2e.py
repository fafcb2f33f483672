"""The field-safety page in a real browser: a briefing from a point and from an address
with an expected person, the review queue."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.browser import log_in
from tests.conftest import PASSWORD
from tests.servers import Node
from tocsin.safety import service
from tocsin.safety.schemas import FlagIn, IdentityRecordIn

pytestmark = pytest.mark.e2e


@pytest.fixture
def node(force, settings, database_url):
    n = Node(settings.data_dir, database_url)
    yield n
    n.stop()


def test_briefing_and_review_queue_in_the_browser(browser, force, node):
    rt = force.runtime
    service.create_flag(rt, force.principal("patrol1"), FlagIn(
        category="fortified_door", reason="<b>steel</b> door, two bolts", source="patrol",
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=100),
        place={"lat": 60.17, "lon": 24.94, "address": "Bulevardi 1"}))
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, node.url, "commander1", PASSWORD)
    page.goto(node.url + "/safety")
    page.wait_for_selector("#review .flag")
    assert "awaiting review" in page.inner_text("#review")
    page.fill("#lat", "60.17")
    page.fill("#lon", "24.9401")
    page.click("#briefing-button")
    page.wait_for_selector("#briefing-flags .flag")
    text = page.inner_text("#briefing-flags")
    assert "Fortified door" in text and "<b>steel</b> door" in text  # shown as text, not HTML
    assert page.locator("#briefing-flags b").count() == 0
    page.click("#review .flag button:has-text('Confirm')")
    page.wait_for_selector("#review p.muted")  # nothing left to review
    # by address, with someone expected there known by name and birth date only
    service.add_record(rt, force.principal("patrol1"), IdentityRecordIn(
        source="rms", given_names="Jean-Pierre", surname="Dupont", birth_date="1981-03-04"))
    page.fill("#address", "bulevardi 1")
    page.fill("#expected", "Jean Pierre; Dupond; 04/03/1981")
    page.click("#briefing-button")
    page.wait_for_selector("#briefing-located")
    assert page.inner_text("#briefing-located").startswith("Bulevardi 1")
    assert "Fortified door" in page.inner_text("#briefing-flags")
    assert "matches expected person 1" in page.inner_text("#briefing-persons")
    assert errors == []
    page.close()
