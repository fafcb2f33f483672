"""The dispatch floor and a unit's phone in two real browsers."""

from __future__ import annotations

import pytest

from tests.browser import log_in
from tests.conftest import PASSWORD
from tests.servers import Node

pytestmark = pytest.mark.e2e


@pytest.fixture
def node(force, dispatch, settings, database_url):
    n = Node(settings.data_dir, database_url)
    yield n
    n.stop()


def test_call_taker_dispatches_and_the_unit_sees_it_live(browser, node, dispatch):
    hki11 = dispatch.test_units["HKI-11"]
    phone_ctx = browser.new_context(viewport={"width": 400, "height": 800})
    phone = phone_ctx.new_page()
    log_in(phone, node.url, "patrol1", PASSWORD)
    phone.goto(node.url + "/unit")
    phone.wait_for_selector("body[data-ready='1']")
    phone.wait_for_selector("#unit-status[data-status='available']")
    assert phone.inner_text("#unit-callsign") == "HKI-11"

    desk = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    log_in(desk, node.url, "calltaker", PASSWORD)
    desk.goto(node.url + "/dispatch")
    desk.wait_for_selector("body[data-ready='1']")
    desk.fill("#call-number", "+358 40 765 4321")
    desk.type("#call-address", "Manerheimintie 5", delay=20)  # typo: one n
    suggestion = desk.locator(".suggestion", has_text="Mannerheimintie 5")
    suggestion.first.wait_for()
    suggestion.first.click()
    assert desk.input_value("#call-address").startswith("Mannerheimintie 5")
    desk.fill("#call-narrative", "Two men breaking into the shop on the ground floor")
    desk.click("#call-save")
    desk.wait_for_selector("#call-result:not([hidden])")
    desk.select_option("#incident-type", "burglary")
    assert desk.input_value("#incident-priority") == "1"
    desk.click("#incident-create")
    desk.wait_for_selector("#incident-panel:not([hidden])")
    assert "Mannerheimintie 5" in desk.inner_text("#incident-address")
    # the units are ranked with their reasons; the plan asks for two patrols
    desk.wait_for_selector("#recommendations .dispatch-btn")
    assert "2× patrol" in desk.inner_text("#recommend-plan")
    recs = desk.locator("#recommendations li.rec")
    assert recs.count() == 4
    assert "by road" in recs.first.inner_text()
    # the briefing panel is there and says what it can
    desk.wait_for_selector("#briefing p, #briefing pre")
    desk.click(f"#recommendations .dispatch-btn[data-unit='{hki11}']")
    desk.wait_for_selector("#assignments li:has-text('HKI-11')")
    assert desk.inner_text("#incident-status") == "dispatched"

    # the unit's phone gets the incident live: status, address, route
    phone.wait_for_selector("#unit-status[data-status='dispatched']")
    phone.wait_for_selector("#assignment:not([hidden])")
    assert "Mannerheimintie 5" in phone.inner_text("#assignment-address")
    assert "by road" in phone.inner_text("#assignment-eta")
    # the crew reports en route: the dispatch floor sees it arrive
    phone.click("#btn-en_route")
    phone.wait_for_selector("#unit-status[data-status='en_route']")
    desk.wait_for_selector(f"#unit-{hki11}-status:has-text('en route')")
    desk.wait_for_selector("#incident-status:has-text('en route')")
    phone_ctx.close()
