"""In a real browser: two investigators in different regions, a shared phone number,
a hit, an access request and its grant (live, without reloading)."""

from __future__ import annotations

import pytest

from tests.browser import log_in
from tests.conftest import PASSWORD
from tests.servers import Node

pytestmark = pytest.mark.e2e


@pytest.fixture
def node(force, settings, database_url):
    n = Node(settings.data_dir, database_url)
    yield n
    n.stop()


def _open_cases(page, url, user):
    log_in(page, url, user, PASSWORD)
    page.goto(url + "/cases")
    page.wait_for_selector("body[data-ready='1']")


def _new_case_with_phone(page, title, number):
    page.fill("#new-case-title", title)
    page.click("#new-case-button")
    page.wait_for_selector(f"#case-title:has-text('{title}')")
    page.select_option("#entity-type", "phone")
    page.fill("#entity-fields input[data-prop='number']", number)
    page.click("#entity-add")
    page.wait_for_selector("#entities tr[data-entity]")


def test_two_regions_hit_request_grant(browser, node):
    one = browser.new_context().new_page()
    two = browser.new_context().new_page()
    _open_cases(one, node.url, "inv1")
    _new_case_with_phone(one, "Burglaries Kulta", "06 12 34 56 78")
    one.wait_for_selector("#chart g.node[data-type='phone']")  # the link chart is drawn
    _open_cases(two, node.url, "inv2")
    _new_case_with_phone(two, "Drugs Nord", "+33 6 12-34-56-78")
    hit = two.wait_for_selector("#case-hits li.hit")
    assert "D11" in hit.inner_text() and "100%" in hit.inner_text()
    # inv1 is told at once, live, in her own hits list
    one.wait_for_selector("#my-hits li.hit:has-text('D21')")
    # the hit does not show the other case's content
    assert "Burglaries" not in two.inner_text("body")
    two.once("dialog", lambda d: d.accept("the same prepaid phone in my drugs case"))
    two.click("#case-hits button.request-access")
    two.wait_for_selector("#requests-mine li:has-text('pending')")
    # the owner sees the request live and grants it
    req = one.wait_for_selector("#requests-to-decide li:has-text('prepaid phone')")
    assert "Inv2" in req.inner_text()
    one.click("#requests-to-decide button.grant")
    one.wait_for_selector("#requests-to-decide li:has-text('granted')")
    # the requester learns it live and opens the case
    two.wait_for_selector("#requests-mine li:has-text('granted') a.open-granted")
    two.click("#requests-mine a.open-granted")
    two.wait_for_selector("#case-title:has-text('Burglaries Kulta')")
    assert two.is_hidden("#entity-form") and two.is_hidden("#link-form")  # read access only
    # a search that once returned nothing now finds the granted case
    two.fill("#search-phone", "0612345678")
    two.click("#search-button")
    two.wait_for_selector("#search-results tr:has-text('Burglaries Kulta')")
    one.close()
    two.close()
