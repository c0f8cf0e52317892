"""Settings: one table, read from HEMSYNC_* variables, every one documented in the README."""

import pathlib

import pytest

from server import settings

README = pathlib.Path(__file__).parents[2] / "README.md"


def test_every_setting_is_documented_in_the_readme():
    text = README.read_text()
    section = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    missing = [s.name for s in settings.SETTINGS if f"`{s.name}`" not in section]
    assert missing == []


def test_settings_come_from_the_environment_with_defaults():
    values = settings.load({"HEMSYNC_MAX_BATCH": "7", "HEMSYNC_WORKDAY_END": "17:30"})
    assert values["HEMSYNC_MAX_BATCH"] == 7
    assert values["HEMSYNC_MAX_CLOCK_AHEAD"] == 120
    assert values["HEMSYNC_WORKDAY_END"].hour == 17
    assert settings.dispatch_settings(values).workday_end.minute == 30


def test_a_bad_value_names_the_setting():
    with pytest.raises(ValueError, match="HEMSYNC_PAGE_SIZE"):
        settings.load({"HEMSYNC_PAGE_SIZE": "many"})


def test_an_unknown_override_is_refused():
    with pytest.raises(KeyError):
        settings.load({}, {"max_bach": 3})
