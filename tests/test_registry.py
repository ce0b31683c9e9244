"""The one registration idiom (dupbench.registry): decorate, look up lazily, refuse clashes."""

from __future__ import annotations

import sys

import pytest

from dupbench.errors import UnknownNameError
from dupbench.registry import Registry


def test_register_by_attribute_or_function_name_and_look_up_case_insensitively():
    reg: Registry[object] = Registry("widget")

    @reg.register()
    def sharpen():
        return "s"

    @reg.register()
    class Blur:
        name = "Blur"

    assert reg.get("SHARPEN") is sharpen and reg.get("blur") is Blur
    assert reg.names() == ["blur", "sharpen"] and "Blur" in reg and len(reg) == 2


def test_unknown_name_suggests_the_nearest():
    reg: Registry[object] = Registry("widget")
    reg.add("sharpen", object())
    with pytest.raises(UnknownNameError, match=r"unknown widget 'sharpn'.*did you mean 'sharpen'"):
        reg.get("sharpn")


def test_a_second_object_under_a_taken_name_is_refused():
    reg: Registry[object] = Registry("widget")
    reg.add("a", 1)
    reg.add("a", 1)  # the same object again (a module imported twice) is fine
    with pytest.raises(ValueError, match="registered twice"):
        reg.add("A", 2)


def test_listed_modules_are_imported_only_on_first_lookup(tmp_path, monkeypatch):
    (tmp_path / "late_widgets.py").write_text(
        "from tests_registry_target import REG\nREG.add('late', 42)\n"
    )
    target = type(sys)("tests_registry_target")
    target.REG = Registry("widget", modules=("late_widgets",))
    monkeypatch.setitem(sys.modules, "tests_registry_target", target)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "late_widgets" not in sys.modules
    assert target.REG.get("late") == 42 and "late_widgets" in sys.modules
    monkeypatch.delitem(sys.modules, "late_widgets")


def test_a_scanned_package_registers_every_public_submodule(tmp_path, monkeypatch):
    pkg = tmp_path / "widget_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from dupbench.registry import Registry\nREG = Registry('widget', packages=('widget_pkg',))\n"
    )
    (pkg / "one.py").write_text("from widget_pkg import REG\nREG.add('one', 1)\n")
    (pkg / "_private.py").write_text("raise RuntimeError('never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import widget_pkg

    assert widget_pkg.REG.names() == ["one"]
    for name in ("widget_pkg", "widget_pkg.one"):
        monkeypatch.delitem(sys.modules, name)
