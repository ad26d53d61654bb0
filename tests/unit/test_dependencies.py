"""pyproject.toml's ranges and constraints.txt's pins describe one set of versions.

Engines install this package with the ranges; CI, ``./run bootstrap`` and the Dockerfile install the pins.
A pin outside its range, or a dependency with no pin, would make the tested build differ from what either
side gets.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt pins exact versions only: {line!r}"
            pins[str(canonicalize_name(name))] = Version(version)
    return pins


def _requirements() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"runtime": project["dependencies"], **project["optional-dependencies"]}
    return {group: [Requirement(r) for r in reqs] for group, reqs in groups.items()}


def test_every_direct_dependency_is_a_range_with_a_pin_inside_it() -> None:
    pins = _pins()
    for group, reqs in _requirements().items():
        for req in reqs:
            name = canonicalize_name(req.name)
            assert name in pins, f"{group}: {req} has no pin in constraints.txt"
            assert not any(s.operator == "==" for s in req.specifier), f"{group}: {req} is a pin, not a range"
            assert pins[name] in req.specifier, f"{group}: constraints.txt pins {name} {pins[name]}, outside {req}"


def test_bench_tools_are_not_in_what_the_writer_or_its_tests_need() -> None:
    groups = {g: {canonicalize_name(r.name) for r in reqs} for g, reqs in _requirements().items()}
    assert {"matplotlib", "py-spy"} <= groups["bench"]
    assert not {"matplotlib", "py-spy"} & (groups["runtime"] | groups["dev"])


def test_uvloop_only_where_it_installs() -> None:
    (uvloop,) = (r for r in _requirements()["runtime"] if r.name == "uvloop")
    assert uvloop.marker is not None
    assert not uvloop.marker.evaluate({"sys_platform": "win32", "platform_python_implementation": "CPython"})
    assert not uvloop.marker.evaluate({"sys_platform": "linux", "platform_python_implementation": "PyPy"})
    assert uvloop.marker.evaluate({"sys_platform": "linux", "platform_python_implementation": "CPython"})
