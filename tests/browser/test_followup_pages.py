"""The follow-up pages in a real browser: an admin's figures and charts, a nurse's due lists."""

from playwright.sync_api import expect

from .conftest import screenshot


def test_an_admin_opens_the_follow_up_from_the_menu_and_sees_the_charts_with_the_target(browser, region):
    admin = region.sign_in(browser, "admin-per")
    admin.get_by_role("link", name="Uppföljning").click()
    expect(admin.get_by_role("heading", name="De senaste tolv månaderna")).to_be_visible()
    expect(admin.get_by_role("img", name="Fast läkarkontakt på SÄBO")).to_be_visible()
    expect(admin.locator('[data-chart="named_doctor_share_sabo"] line.target')).to_have_count(1)
    expect(admin.locator('tr[data-figure="named_doctor_share_sabo"]')).to_contain_text("mål 80 %")
    screenshot(admin, "admin-followup")


def test_a_nurse_opens_her_due_lists_from_the_menu(browser, region):
    nurse = region.sign_in(browser, "nurse-halmstad")
    nurse.get_by_role("link", name="Att göra-listor").click()
    expect(nurse.get_by_role("heading", name="Att göra-listor")).to_be_visible()
    section = nurse.locator('[data-list="sabo_without_named_doctor"]')
    expect(section.get_by_role("cell", name="Tolvan Tolvansson")).to_be_visible()
    expect(section.get_by_role("cell", name="Bor på SÄBO utan fast läkarkontakt").first).to_be_visible()
    screenshot(nurse, "nurse-due")
