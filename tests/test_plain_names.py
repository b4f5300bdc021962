"""One rule for the folders a user names (datasets, subsets, exports): paths.is_plain_name;
check_name and check_export_name differ only in the longest name they take."""

from __future__ import annotations

import pytest

from backend import paths
from backend.export.target import BadExportName, check_export_name


@pytest.mark.parametrize("name", ["a", "demo", "x.y-z_1", "A" * 64, "v2.0"])
def test_plain_names_pass_both_checks(name: str) -> None:
    assert paths.is_plain_name(name)
    assert paths.check_name(name) == name and check_export_name(name) == name


@pytest.mark.parametrize("name", ["", "..", "a..b", "-a", ".hidden", "a/b", "../x", "a\n",
                                  "a b", "ä", "/abs"])
def test_unsafe_names_fail_both_checks(name: str) -> None:
    assert not paths.is_plain_name(name)
    with pytest.raises(paths.BadName):
        paths.check_name(name)
    with pytest.raises(BadExportName):
        check_export_name(name)


def test_exports_take_longer_names_than_datasets() -> None:
    assert check_export_name("e" * 128) and not paths.is_plain_name("e" * 65)
    with pytest.raises(paths.BadName, match="1-64 letters"):
        paths.check_name("d" * 65)
    with pytest.raises(BadExportName):
        check_export_name("e" * 129)
    assert not paths.is_plain_name(None) and not paths.is_plain_name(7)
