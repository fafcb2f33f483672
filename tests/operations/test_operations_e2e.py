"""In real browsers: a commander creates an operation, draws a sector, assigns a unit;
the unit's officer (a second browser) shares its position and sends a report with a
photo; the commander sees both live and in the replay."""

from __future__ import annotations

import pytest

from tests.browser import log_in
from tests.conftest import PASSWORD
from tests.operations.helpers import png_bytes
from tests.servers import Node

pytestmark = pytest.mark.e2e


@pytest.fixture
def node(force, settings, database_url):
    n = Node(settings.data_dir, database_url)
    yield n
    n.stop()


def test_commander_sees_unit_position_and_photo_report_live_and_in_replay(browser, node):
    cmd_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    cmd = cmd_ctx.new_page()
    errors: list[str] = []
    cmd.on("pageerror", lambda e: errors.append(str(e)))
    log_in(cmd, node.url, "commander1", PASSWORD)
    cmd.goto(node.url + "/operations")
    cmd.fill("#op-name", "Riot at the square")
    cmd.click("#op-create")
    cmd.wait_for_selector("#op-panel:not([hidden])")
    cmd.wait_for_selector("#op-title:has-text('Riot at the square')")
    # draw a sector: click four corners on the map
    cmd.click("#draw-sector")
    box = cmd.locator("#map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for dx, dy in ((-80, -80), (80, -80), (80, 80), (-80, 80)):
        cmd.mouse.click(cx + dx, cy + dy)
    cmd.wait_for_selector("#draw-count:has-text('4')")
    cmd.fill("#sector-name", "Centre")
    cmd.click("#finish-sector")
    cmd.wait_for_selector("#sectors li:has-text('Centre')")
    # a unit with the patrol officer, assigned to the sector
    cmd.fill("#unit-callsign", "ALPHA-1")
    cmd.fill("#unit-code", "B1111")
    cmd.fill("#unit-members", "patrol1")
    cmd.click("#add-unit")
    cmd.wait_for_selector("#units tbody tr:has-text('ALPHA-1')")
    cmd.select_option("#units select.sector", label="Centre")
    cmd.wait_for_selector("#journal li:has-text('ALPHA-1 assigned to sector Centre')")
    state = cmd.evaluate("({op: OpsPage.state.op.id, unit: OpsPage.state.op.units[0].id,"
                         " ring: OpsPage.state.op.sectors[0].geometry.coordinates[0]})")
    ring = state["ring"][:-1]
    lat = sum(p[1] for p in ring) / len(ring)
    lon = sum(p[0] for p in ring) / len(ring)

    # the officer's phone: a second browser with a GPS fix inside the sector
    phone_ctx = browser.new_context(geolocation={"latitude": lat, "longitude": lon,
                                                 "accuracy": 10},
                                    permissions=["geolocation"])
    phone = phone_ctx.new_page()
    phone.on("pageerror", lambda e: errors.append(str(e)))
    log_in(phone, node.url, "patrol1", PASSWORD)
    phone.goto(f"{node.url}/operations?id={state['op']}")
    phone.wait_for_selector("#my-unit:not([hidden])")
    phone.wait_for_selector("#my-callsign:has-text('ALPHA-1')")
    phone.click("#share-position")
    phone.wait_for_selector("#share-status:has-text('sharing')")

    row = f"#unit-row-{state['unit']} .pos"
    cmd.wait_for_selector(f"{row}:has-text('{lat:.5f}')")

    phone.fill("#report-text", "Crowd breaking through the fence")
    phone.set_input_files("#report-photo", files=[{"name": "fence.png", "mimeType": "image/png",
                                                   "buffer": png_bytes()}])
    phone.click("#send-report")
    report = "#journal li.k-report:has-text('Crowd breaking through the fence')"
    cmd.wait_for_selector(report)
    cmd.wait_for_selector(report + " img[src^='blob:']")

    # replay: before the unit existed there is nothing; now, both are there
    cmd.evaluate("(() => { const s = document.getElementById('replay-slider');"
                 " s.value = s.min; s.dispatchEvent(new Event('input')); })()")
    cmd.wait_for_selector("#replay-banner:not([hidden])")
    cmd.wait_for_selector("#journal li.k-report", state="detached")
    assert cmd.locator(f"#unit-row-{state['unit']}").count() == 0
    cmd.evaluate("(() => { const s = document.getElementById('replay-slider');"
                 " s.max = String(Date.now() + 1000); s.value = s.max;"
                 " s.dispatchEvent(new Event('input')); })()")
    cmd.wait_for_selector(report + " img[src^='blob:']")
    cmd.wait_for_selector(f"{row}:has-text('{lat:.5f}')")
    assert "Replay at" in cmd.inner_text("#replay-banner")
    cmd.click("#replay-live")
    cmd.wait_for_selector("#replay-banner", state="hidden")
    assert errors == []
    phone_ctx.close()
    cmd_ctx.close()
