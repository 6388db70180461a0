"""The benchmark runner keeps working: every benchmark loads, and a quick core run prints consistent rows.

Speed targets themselves are checked by the full benchmark runs, never here.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "benchmarks" / "run.py"
ROW = re.compile(r"^   (?P<metric>.+): value (?P<value>\S+), anchor (?P<anchor>\S+), ratio (?P<ratio>\S+) "
                 r"\(target (?P<target>.+)\) (?P<verdict>.+)$")


def _runner(*args):
    return subprocess.run([sys.executable, str(RUNNER), *args], capture_output=True, text=True, cwd=ROOT,
                          env=os.environ, timeout=600)


def test_every_benchmark_module_defines_run():
    sys.path.insert(0, str(RUNNER.parent))
    try:
        import run as runner
    finally:
        sys.path.remove(str(RUNNER.parent))
    found = runner.discover()
    assert {"core", "almafetch", "wtcheck", "tbconv", "cl2image", "frameconv"} <= set(found)
    for name, path in found.items():
        module = runner.load(path)
        assert callable(getattr(module, "run", None)), f"benchmarks/{path.name} lacks run(quick)"
        assert module.__doc__, f"benchmarks/{path.name} lacks a docstring saying what it measures"


def test_quick_core_run_prints_value_anchor_and_their_ratio():
    out = _runner("core", "--quick")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = [m.groupdict() for m in map(ROW.match, out.stdout.splitlines()) if m]
    assert [r["metric"] for r in rows] == ["import almatools.casa_tasks vs import casatasks (s)",
                                           "task call vs direct implementation call (s/call)"]
    for r in rows:
        value, anchor, ratio = float(r["value"]), float(r["anchor"]), float(r["ratio"])
        assert value > 0 and anchor > 0
        # value and anchor are printed to 4 significant digits (<= 5e-4 relative each), the ratio to 3 decimals
        assert abs(ratio - value / anchor) <= 2e-3 * ratio + 5e-4, r
        assert r["verdict"].startswith("(smoke:")


def test_unknown_benchmark_is_refused_by_name():
    out = _runner("nosuchbench")
    assert out.returncode == 2
    assert "nosuchbench" in out.stderr and "core" in out.stderr
