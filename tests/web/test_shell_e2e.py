"""The web shell in a real browser: login, modules by role, devices, revocation."""

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


def test_login_shows_modules_of_the_role_and_wrong_password_is_explained(browser, node):
    page = browser.new_page()
    page.goto(node.url + "/")
    page.fill("#username", "patrol1")
    page.fill("#password", "wrong password!")
    page.click("#login-button")
    page.wait_for_selector("#login-error:has-text('wrong username or password')")
    log_in(page, node.url, "patrol1", PASSWORD)
    modules = page.locator("#modules a").all_inner_texts()
    assert "Dispatch" in modules and "Investigations" not in modules
    assert "this device" in page.inner_text("#sessions")
    headers = page.request.get(node.url + "/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    page.close()


def test_a_device_logged_out_from_another_is_cut_off(browser, node):
    phone = browser.new_context().new_page()
    desk = browser.new_context().new_page()
    log_in(phone, node.url, "inv1", PASSWORD)
    log_in(desk, node.url, "inv1", PASSWORD)
    desk.reload()
    desk.wait_for_selector("#sessions button.danger")
    desk.click("#sessions button.danger")
    phone.reload()
    phone.wait_for_selector("#login-panel:not([hidden])")
    assert phone.evaluate("localStorage.getItem('tocsin.auth')") is None
