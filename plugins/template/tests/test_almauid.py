"""Tests of the template plugin's task, run through almatools like a user would."""

import pytest

from almatools import TaskParameterError


@pytest.fixture
def almauid():
    from almatools.casa_tasks import almauid
    return almauid


def test_both_forms(almauid):
    result = almauid(uids=["uid://A001/X12a3/Xe9", "uid___A002_Xd28a9e_X71b8"], form="filename")
    assert result["uids"] == ["uid___A001_X12a3_Xe9", "uid___A002_Xd28a9e_X71b8"]
    assert result["converted"][1]["archive"] == "uid://A002/Xd28a9e/X71b8"
    assert result["converted"][0]["member_dir"] == "member.uid___A001_X12a3_Xe9"


def test_single_string_is_a_list_of_one(almauid):
    assert almauid("uid___A001_X1_X2")["uids"] == ["uid://A001/X1/X2"]


def test_bad_uid_names_the_value(almauid):
    with pytest.raises(TaskParameterError, match=r"almauid: parameter 'uids' must look like .*got 'uid:/A001'"):
        almauid(uids=["uid:/A001"])


def test_bad_form_is_refused_by_the_xml(almauid):
    with pytest.raises(TaskParameterError, match="must be one of \\['archive', 'filename'\\]"):
        almauid(uids=["uid___A001_X1_X2"], form="url")


def test_registered_by_this_plugin():
    from almatools import get_registry
    task = get_registry().get("almauid")
    assert task.plugin == "uidtools" and task.distribution.startswith("almatools-plugin-template ")
