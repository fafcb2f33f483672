"""The messenger in real browsers: two users exchange a photo with its thumbnail, a
broadcast alert is received and acknowledged, a revoked device is cut off and wiped."""

from __future__ import annotations

import httpx
import pytest

from tests.browser import log_in
from tests.conftest import PASSWORD
from tests.messaging.helpers import C3, Mx, jpeg

pytestmark = pytest.mark.e2e


def _open_messenger(b, url: str, user: str):
    ctx = b.new_context()
    page = ctx.new_page()
    log_in(page, url, user, PASSWORD)
    page.goto(url + "/messenger")
    page.wait_for_selector("#live-status.live")
    return page


def test_two_users_photo_alert_and_revoked_device(browser, node, tmp_path):
    alice = _open_messenger(browser, node.url, "patrol1")
    bob = _open_messenger(browser, node.url, "patrol2")
    # alice starts a direct conversation with bob from the directory
    alice.fill("#dm-user", "patrol2")
    alice.click("#dm-hits button")
    alice.wait_for_selector("#composer:not([hidden])")
    alice.fill("#text", "Photo from the scene follows")
    alice.click("#send")
    # as a person would: the photo once the text is sent (the composer clears its fields
    # when a send completes, so a file chosen meanwhile was dropped when sends got fast)
    alice.wait_for_function("() => document.getElementById('text').value === ''")
    photo = tmp_path / "scene.jpg"
    photo.write_bytes(jpeg((640, 480)))
    alice.set_input_files("#file", str(photo))
    alice.click("#send")
    bob.wait_for_selector("#rooms li[data-room]")
    bob.click("#rooms li[data-room]")
    bob.wait_for_selector("#timeline li:has-text('Photo from the scene follows')")
    img = bob.wait_for_selector("#timeline img.thumb[src^='blob:']")
    bob.wait_for_function("el => el.naturalWidth > 0", arg=img)
    assert bob.evaluate("el => el.naturalWidth", img) <= 320  # the thumbnail, not the photo
    # a commander sends a missing-person alert to the region; bob receives and acknowledges
    cmd = _open_messenger(browser, node.url, "commander1")
    cmd.click("#alert-compose summary")
    cmd.fill("#alert-title", "Missing: Aino, 8")
    cmd.fill("#alert-desc", "Red coat, blue backpack")
    cmd.fill("#alert-units", "R1")
    cmd.click("#alert-send")
    bob.click("#alerts .alert-card:has-text('Missing: Aino, 8') button.ack")
    bob.wait_for_selector("#alerts .alert-card .badge:has-text('acknowledged')")
    # in the broadcast channel the alert (a standard m.room.message) shows as an alert card
    bob.click("#rooms li[data-room]:has-text('Alerts: Region One')")
    bob.wait_for_selector("#timeline li.alert-card:has-text('ALERT: Missing: Aino, 8')")
    cmd.reload()
    cmd.wait_for_selector("#alerts .ack-summary:has-text('acknowledged by 1 of 7')")
    # bob's phone is lost: he logs it out from his desk; the phone is cut off and wiped
    desk = _open_messenger(browser, node.url, "patrol2")
    desk.click("#devices-panel summary")
    desk.wait_for_selector("#devices button.revoke")
    assert bob.evaluate("localStorage.getItem('tocsin.msg.cache')") is not None
    desk.click("#devices button.revoke")
    bob.wait_for_url("**/?revoked=1", timeout=15000)
    assert bob.evaluate("localStorage.getItem('tocsin.msg.cache')") is None
    assert bob.evaluate("localStorage.getItem('tocsin.auth')") is None


def test_message_arriving_while_a_room_loads_is_kept(browser, node):
    """The room's history is read before a message is posted, and answered only once that
    message has come live: the page must not replace the timeline without it."""
    with httpx.Client(base_url=node.url) as http:
        a, b = Mx(http, "patrol1"), Mx(http, "patrol2")
        room = a.create_room(name="Loading", invite=[b.user_id])
        assert b.post(f"{C3}/rooms/{room}/join").status_code == 200
        a.send_ok(room, "before the load")
        bob = _open_messenger(browser, node.url, "patrol2")
        held = {}

        def hold(route):
            held["response"] = route.fetch()  # the history as it is now
            held["route"] = route

        bob.route("**/rooms/*/messages?*", hold)
        bob.click(f"#rooms li[data-room='{room}']")
        while "route" not in held:
            bob.wait_for_timeout(20)
        a.send_ok(room, "during the load")
        bob.wait_for_selector("#timeline li:has-text('during the load')")  # came live
        held["route"].fulfill(response=held["response"])
        bob.wait_for_selector("#timeline li:has-text('before the load')")  # history shown
        assert bob.locator("#timeline li:has-text('during the load')").count() == 1
