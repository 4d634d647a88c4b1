"""Startup guards: the GIL must stay off and the CPU must be x86-64.

Why: importing one C extension that does not declare free-threading support silently turns the
GIL back on for the whole process (trap #9: only a RuntimeWarning). The engine's module threads
would then serialise and every latency figure would be a lie, so the engine refuses to start and
names the module responsible. The ring's memory ordering relies on x86-64 TSO (trap #3), so other
architectures are refused too (there is no fenced publish path).

Call `watch()` as early as possible (the CLI does it before importing anything heavy), then
`ensure_gil_disabled()` after all imports.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import sysconfig
import warnings
from collections.abc import Iterable
from importlib import import_module
from types import ModuleType
from typing import Any

_GIL_WARNING = re.compile(r"enabled to load module '([^']+)'")
_culprits: list[str] = []
_installed = False
_orig_showwarning: Any = None


class GilEnabledError(RuntimeError):
    """The GIL is on (or the interpreter is a GIL build): the engine must not start."""


class PlatformError(RuntimeError):
    """Not x86-64: the ring's publish ordering is only proven on TSO hardware."""


def free_threaded_build() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED") == 1)


def gil_enabled() -> bool:
    fn = getattr(sys, "_is_gil_enabled", None)
    return True if fn is None else bool(fn())


def _showwarning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    m = _GIL_WARNING.search(str(message))
    if m and m.group(1) not in _culprits:
        _culprits.append(m.group(1))
    _orig_showwarning(message, category, filename, lineno, file, line)


def watch() -> None:
    """Record every module whose import re-enables the GIL (idempotent, cheap, import-time only)."""
    global _installed, _orig_showwarning
    if _installed:
        return
    _installed = True
    warnings.filterwarnings("always", message=".*global interpreter lock", category=RuntimeWarning)
    _orig_showwarning = warnings.showwarning
    warnings.showwarning = _showwarning


def culprits() -> list[str]:
    """Modules seen re-enabling the GIL since `watch()`."""
    return list(_culprits)


def _extension_modules(mods: Iterable[ModuleType]) -> list[str]:
    stdlib = sysconfig.get_paths()["platstdlib"]
    out = []
    for m in mods:
        f = getattr(m, "__file__", None) or ""
        if f.endswith(".so") and not f.startswith(stdlib):
            out.append(m.__name__)
    return sorted(out)


def import_checked(names: Iterable[str]) -> list[ModuleType]:
    """Import modules one at a time and stop at the first that turns the GIL on, naming it and
    the extension modules it pulled in (a `sys.modules` diff), not just the top-level name."""
    watch()
    mods = []
    for name in names:
        before = set(sys.modules)
        was = gil_enabled()
        mods.append(import_module(name))
        if not was and gil_enabled():
            new = [sys.modules[n] for n in set(sys.modules) - before if n in sys.modules]
            exts = _extension_modules(new)
            detail = ", ".join(_culprits or exts) or "an extension module"
            raise GilEnabledError(
                f"importing {name!r} turned the GIL back on ({detail} does not declare "
                "free-threading support). Remove that dependency from the engine, or run it in "
                "a separate process."
            )
    return mods


def ensure_gil_disabled(allow_gil: bool = False, who: str = "vajra") -> str | None:
    """Raise GilEnabledError unless the GIL is off. With `allow_gil` (comparison benchmarks
    only) return a warning text instead. Returns None when all is well."""
    if not free_threaded_build():
        msg = (
            f"{who}: {sys.executable} is a GIL build of Python {platform.python_version()}; "
            "Vajra needs free-threaded CPython 3.13t (run scripts/bootstrap-python, or `make`)"
        )
    elif gil_enabled():
        why: str
        env = os.environ.get("PYTHON_GIL")
        xopt = sys._xoptions.get("gil")
        if env == "1":
            why = "the environment sets PYTHON_GIL=1"
        elif xopt == "1":
            why = "the interpreter was started with -X gil=1"
        elif _culprits:
            why = "module(s) " + ", ".join(repr(c) for c in _culprits) + " re-enabled it on import"
        else:
            exts = _extension_modules(list(sys.modules.values()))
            why = (
                "one of these extension modules re-enabled it on import: " + ", ".join(exts)
                if exts
                else "an unknown module re-enabled it"
            )
        msg = f"{who}: the GIL is enabled at run time: {why}"
    else:
        return None
    if allow_gil:
        return msg + " (continuing: --allow-gil is for comparison benchmarks only)"
    raise GilEnabledError(msg)


def check_platform(machine: str | None = None) -> None:
    """Refuse anything but x86-64: no fenced publish path exists for weakly ordered CPUs."""
    m = (machine or platform.machine()).lower()
    if m not in ("x86_64", "amd64"):
        raise PlatformError(
            f"vajra: CPU architecture {m!r} is not supported. The shared-memory ring publishes "
            "with plain stores and relies on x86-64 store ordering (TSO); on weakly ordered CPUs "
            "(ARM, POWER) it would need memory fences that pure Python cannot emit."
        )
