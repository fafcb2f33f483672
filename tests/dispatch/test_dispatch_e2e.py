"""The dispatch floor and a unit's phone in two real browsers."""

from __future__ import annotations

import datetime as dt

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


@pytest.fixture
def known_place(force, dispatch):
    """Mannerheimintie 5 has a history: a fortified door (a force-wide warning), a
    welfare check by brigade B1112 of a man with a health flag (need-to-know: the
    call-taker above that brigade sees it, patrol1 beside it does not), and an
    earlier incident, closed."""
    from tocsin.dispatch.schemas import IncidentIn, Point
    from tocsin.geo.service import get_geo
    from tocsin.safety import service as safety
    from tocsin.safety.schemas import FlagIn, IdentityRecordIn, OperationIn, PlaceIn

    rt = force.runtime
    here = get_geo(rt).search("Mannerheimintie 5", limit=1)[0]
    place = PlaceIn(lat=here.lat, lon=here.lon, address="Mannerheimintie 5")
    now = dt.datetime.now(dt.UTC)
    until = now + dt.timedelta(days=60)
    patrol1, patrol2 = force.principal("patrol1"), force.principal("patrol2")
    safety.create_flag(rt, patrol1, FlagIn(
        category="fortified_door", place=place, reason="steel door, opens inwards",
        source="patrol report 2026/311", expires_at=until))
    person = safety.add_record(rt, patrol2, IdentityRecordIn(
        source="rms", given_names="Matti", surname="Virtanen", birth_date="1970-05-06"))
    safety.record_operation(rt, patrol2, OperationIn(
        lat=here.lat, lon=here.lon, address="Mannerheimintie 5",
        started_at=now - dt.timedelta(days=4), nature="welfare check",
        outcome="ambulance called", persons=[{"person_id": person["person_id"],
                                              "role": "occupant"}]))
    safety.create_flag(rt, patrol2, FlagIn(
        category="infectious", person_id=person["person_id"], reason="tuberculosis",
        source="ambulance report 2026/7", expires_at=until))
    old = dispatch.create_incident(force.principal("dispatcher"), IncidentIn(
        type_code="theft", location=Point(lat=here.lat, lon=here.lon)))
    dispatch.set_status(force.principal("dispatcher"), old.id, "closed", "report taken")
    return old.id


def test_call_taker_dispatches_and_the_unit_sees_it_live(browser, node, dispatch, known_place):
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
    # the briefing reads as a briefing, not as a JSON dump: flags with reason and
    # source, prior operations, persons
    desk.wait_for_selector("#briefing .briefing-flags")
    brief = desk.inner_text("#briefing")
    assert "{" not in brief and '"' not in brief
    assert "Fortified door" in brief and "steel door, opens inwards" in brief
    assert "source: patrol report 2026/311" in brief
    assert "Infectious disease" in brief and "tuberculosis" in brief
    assert "welfare check" in desk.inner_text("#briefing .briefing-ops")
    assert "Matti Virtanen" in desk.inner_text("#briefing .briefing-persons")
    assert desk.locator("#briefing .briefing-withheld").count() == 0
    # the surroundings are on the map too: the flagged place and the earlier incident
    desk.wait_for_selector(".leaflet-marker-pane .map-hazard")
    desk.wait_for_selector(".leaflet-marker-pane .map-past")
    assert f"#{known_place}" in desk.inner_text("#surroundings")
    desk.click(f"#recommendations .dispatch-btn[data-unit='{hki11}']")
    desk.wait_for_selector("#assignments li:has-text('HKI-11')")
    assert desk.inner_text("#incident-status") == "dispatched"

    # the unit's phone gets the incident live: status, address, route
    phone.wait_for_selector("#unit-status[data-status='dispatched']")
    phone.wait_for_selector("#assignment:not([hidden])")
    assert "Mannerheimintie 5" in phone.inner_text("#assignment-address")
    assert "by road" in phone.inner_text("#assignment-eta")
    # the crew's own briefing: the force-wide warning, not the health flag it may not see
    phone.wait_for_selector("#assignment-briefing .briefing-flags")
    brief = phone.inner_text("#assignment-briefing")
    assert "{" not in brief and "Fortified door" in brief
    assert "Infectious" not in brief and "tuberculosis" not in brief and "Virtanen" not in brief
    assert "withheld" in phone.inner_text("#assignment-briefing .briefing-withheld")
    phone.wait_for_selector(".leaflet-marker-pane .map-hazard")
    # the crew reports en route: the dispatch floor sees it arrive
    phone.click("#btn-en_route")
    phone.wait_for_selector("#unit-status[data-status='en_route']")
    desk.wait_for_selector(f"#unit-{hki11}-status:has-text('en route')")
    desk.wait_for_selector("#incident-status:has-text('en route')")
    phone_ctx.close()

    # a hoax call is closed without an incident, with its reason
    desk.fill("#call-number", "+358 40 000 0000")
    desk.fill("#call-narrative", "says there is a lion in the station")
    desk.click("#call-save")
    desk.wait_for_selector("#call-result:not([hidden])")
    call_id = desk.inner_text("#call-summary").split(":")[0].split()[-1]
    desk.wait_for_selector(f"#call-list li[data-call='{call_id}']")
    desk.select_option("#call-close select", "hoax")
    desk.click("#call-close .close-call")
    desk.wait_for_selector("#call-result", state="hidden")
    desk.wait_for_selector(f"#call-list li[data-call='{call_id}']", state="detached")
