"""Every slice of the registry runs the shared acceptance suite (tests/e2e/acceptance.py): a slice added
without its ``TestAt<Engine>Db`` subclass fails here."""

from __future__ import annotations

import importlib
import pkgutil

import tests.e2e
from contracts.registry import REGISTRY
from tests.e2e.acceptance import SliceAcceptance


def test_every_slice_has_its_acceptance_suite() -> None:
    for info in pkgutil.iter_modules(tests.e2e.__path__):
        if info.name.startswith("test_"):
            importlib.import_module(f"tests.e2e.{info.name}")
    suites = {cls.slice_name: cls for cls in SliceAcceptance.__subclasses__()}
    assert set(suites) == {s.name for s in REGISTRY.slices}
    for s in REGISTRY.slices:
        # The class name carries the seed's test id: AT-ECM-DB -> TestAtEcmDb.
        expected = "Test" + "".join(p.capitalize() for p in s.acceptance.split("-"))
        assert suites[s.name].__name__ == expected, (s.name, suites[s.name].__name__)
