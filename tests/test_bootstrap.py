"""scripts/bootstrap-python: idempotent, prints only the interpreter path on stdout, and never
accepts a GIL build even when one is named explicitly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bootstrap-python"


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT)], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )


def _is_ft(py: str) -> bool:
    r = subprocess.run(
        [
            py,
            "-c",
            "import sysconfig,sys;print(sysconfig.get_config_var("
            "'Py_GIL_DISABLED'), sys.version_info[:2])",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return r.stdout.strip() == "1 (3, 13)"


def test_named_free_threaded_interpreter_is_used_as_is() -> None:
    me = sys._base_executable  # the interpreter this venv was made from
    r = _run({"VAJRA_PYTHON": me})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines() == [me]  # stdout carries only the path
    assert _is_ft(r.stdout.strip())


def test_a_gil_build_is_never_accepted(tmp_path: Path) -> None:
    gil_py = shutil.which("python3.11") or shutil.which("python3")
    if gil_py is None or _is_ft(gil_py):
        gil_py = "/bin/false"
    # the named GIL build is skipped; the cached free-threaded build is found instead
    cache = Path(sys._base_executable).parents[1]
    r = _run(
        {"VAJRA_PYTHON": gil_py, "VAJRA_PY_PREFIX": str(cache), "PATH": f"{tmp_path}:/usr/bin:/bin"}
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    assert out != gil_py and _is_ft(out)


def test_unknown_option_is_an_error() -> None:
    r = subprocess.run([str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "unknown option" in r.stderr
