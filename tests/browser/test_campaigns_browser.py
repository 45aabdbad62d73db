"""Campaigns in Chromium: the navigation pane's entry, the create form, and the test panel listing a user's
recommendations with titles and scores, the same a batch job writes."""

import re

import pytest

from tests.browser.conftest import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_create_a_campaign_and_test_its_results(page, signed_in_writer, shot, trained_version, demo_world):
    version = trained_version("aws-user-personalization")
    group_pk = demo_world["group"].pk
    page.goto(f"/dataset-groups/{group_pk}/")
    page.get_by_role("link", name="Campaigns", exact=True).click()
    expect(page.get_by_text("No campaigns yet")).to_be_visible()
    page.get_by_role("link", name="Create campaign").first.click()
    page.get_by_label("Campaign name").fill("browser-campaign")
    page.get_by_label("Solution and solution version").select_option(version.arn)
    shot(page, "campaign-create")
    page.get_by_role("button", name="Create campaign").click()
    expect(page.locator("h1")).to_contain_text("browser-campaign")
    expect(page.locator("h1")).to_contain_text("Active")

    page.get_by_label("User ID").fill(demo_world["data"].user_ids[0])
    page.get_by_role("button", name="Get recommendations").click()
    rows = page.locator('[data-test="campaign-results"] tbody tr')
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text(re.compile(r"title \d+"))
    expect(page.locator('[data-cli="cli"]')).to_contain_text("aws personalize-runtime get-recommendations")
    shot(page, "campaign-test")
