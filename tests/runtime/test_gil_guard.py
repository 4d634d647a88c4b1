"""The GIL stays off: every runtime dependency and every Vajra module imports with it off, and
the guard refuses to start, naming the culprit, when something turns it on."""

from __future__ import annotations

import importlib.util
import os
import pkgutil
import re
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

import vajra
from vajra.runtime import gil


def _py(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ)
    e.pop("PYTHON_GIL", None)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=e,
    )


def runtime_dependency_modules() -> list[str]:
    """Top-level import names of vajra's declared runtime dependencies (extras excluded)."""
    mods: list[str] = []
    for req in metadata.requires("vajra") or []:
        if "extra ==" in req:
            continue
        dist = re.split(r"[ <>=!~;\[]", req, maxsplit=1)[0]
        top = metadata.distribution(dist).read_text("top_level.txt")
        mods += (top or dist.replace("-", "_")).split()
    return mods


def test_interpreter_is_free_threaded_and_gil_off() -> None:
    assert gil.free_threaded_build(), f"{sys.executable} is not a free-threaded build"
    assert not gil.gil_enabled()


def test_every_vajra_module_and_runtime_dependency_imports_with_gil_off() -> None:
    names = [
        m.name
        for m in pkgutil.walk_packages(vajra.__path__, "vajra.")
        if m.name != "vajra.__main__"
    ]
    names += runtime_dependency_modules()
    assert "vajra.shm.ring" in names and "vajra.runtime.gil" in names
    r = _py(f"""
        import sys, importlib
        for n in {names!r}:
            importlib.import_module(n)
            if sys._is_gil_enabled():
                print("GIL ON after", n); raise SystemExit(1)
        print("ok", len({names!r}))
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok")


needs_hdrh = pytest.mark.skipif(
    importlib.util.find_spec("hdrh") is None,
    reason="hdrhistogram (a dev dependency) is not installed",
)


@needs_hdrh
def test_guard_names_the_extension_that_turned_the_gil_on() -> None:
    r = _py("""
        from vajra.runtime import gil
        gil.watch()
        import hdrh.histogram  # its C extension pyhdrh does not declare free-threading support
        try:
            gil.ensure_gil_disabled(who="engine")
        except gil.GilEnabledError as e:
            print("REFUSED:", e)
    """)
    assert "REFUSED:" in r.stdout, r.stdout + r.stderr
    assert "'pyhdrh'" in r.stdout


@needs_hdrh
def test_import_checked_stops_at_the_culprit() -> None:
    r = _py("""
        from vajra.runtime import gil
        try:
            gil.import_checked(["json", "hdrh.histogram", "decimal"])
        except gil.GilEnabledError as e:
            print("REFUSED:", e)
    """)
    assert "REFUSED: importing 'hdrh.histogram' turned the GIL back on (pyhdrh" in r.stdout, (
        r.stdout + r.stderr
    )


def test_guard_names_python_gil_env_and_allow_gil_downgrades() -> None:
    r = _py(
        """
        from vajra.runtime import gil
        try:
            gil.ensure_gil_disabled()
        except gil.GilEnabledError as e:
            print("REFUSED:", e)
        print("ALLOWED:", gil.ensure_gil_disabled(allow_gil=True))
    """,
        env={"PYTHON_GIL": "1"},
    )
    assert "REFUSED: vajra: the GIL is enabled at run time: the environment sets PYTHON_GIL=1" in (
        r.stdout
    ), r.stdout + r.stderr
    assert "ALLOWED:" in r.stdout and "--allow-gil is for comparison benchmarks only" in r.stdout


def test_cli_refuses_to_start_with_gil_on() -> None:
    e = dict(os.environ, PYTHON_GIL="1")
    r = subprocess.run(
        [sys.executable, "-m", "vajra", "ping", "--seconds", "0.1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=e,
    )
    assert r.returncode == 3
    assert "refusing to start" in r.stderr and "PYTHON_GIL=1" in r.stderr


def test_gil_build_is_refused() -> None:
    assert gil.free_threaded_build()
    # the message a stock build would get is exercised through the flag it reads
    r = _py("""
        import sysconfig
        from vajra.runtime import gil
        sysconfig.get_config_vars()["Py_GIL_DISABLED"] = 0
        try:
            gil.ensure_gil_disabled()
        except gil.GilEnabledError as e:
            print("REFUSED:", e)
    """)
    assert "is a GIL build" in r.stdout and "scripts/bootstrap-python" in r.stdout


@pytest.mark.parametrize("machine", ["aarch64", "arm64", "ppc64le", "riscv64"])
def test_non_x86_is_refused(machine: str) -> None:
    with pytest.raises(gil.PlatformError, match="x86-64 store ordering"):
        gil.check_platform(machine)
    gil.check_platform("x86_64")
