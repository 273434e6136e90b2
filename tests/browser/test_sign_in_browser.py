"""Signing in, in a real browser."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import sign_in


def test_a_wrong_password_says_so_and_the_right_one_signs_in(page, web_user):
    web_user("olga", "privacy_officer")

    sign_in(page, "olga", "not the password at all")
    expect(page.get_by_role("alert")).to_contain_text("name or password is not right")
    expect(page.get_by_label("Name")).to_have_value("olga")

    sign_in(page, "olga")
    expect(page.locator("header .who")).to_have_text("olga")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
