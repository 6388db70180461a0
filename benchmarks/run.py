"""Run the almatools benchmarks:  python benchmarks/run.py [NAME ...] [--quick]

Each ``benchmarks/bench_<name>.py`` defines ``run(quick: bool) -> list[dict]``;
every dict is one measurement with keys ``metric`` (what was measured),
``value`` and ``anchor`` (both measured in this same run, same unit),
``ratio`` (value / anchor), ``target`` (text, e.g. "<= 2x") and ``ok``.
The runner prints one table and exits non-zero when a target is missed.
``--quick`` uses small data (a smoke run; the targets are stated for the
full size).  Large data are made on the fly under benchmarks/_work/ and removed.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> dict[str, Path]:
    return {p.stem[len("bench_"):]: p for p in sorted(HERE.glob("bench_*.py"))}


def load(path: Path):
    if str(HERE) not in sys.path:  # benchmarks import their shared helpers (_common) as a sibling module
        sys.path.insert(0, str(HERE))
    spec = importlib.util.spec_from_file_location(f"almatools_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    found = discover()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {', '.join(found)}")
    parser.add_argument("--quick", action="store_true", help="small data, smoke run")
    args = parser.parse_args(argv)
    names = args.names or list(found)
    unknown = [n for n in names if n not in found]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(found)}")
    rows, all_ok = [], True
    for name in names:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        for r in load(found[name]).run(quick=args.quick):
            rows.append((name, r))
            all_ok &= bool(r["ok"])
            print(f"   {r['metric']}: value {r['value']:.4g}, anchor {r['anchor']:.4g}, ratio {r['ratio']:.3f} "
                  f"(target {r['target']}) {_verdict(r, args.quick)}", flush=True)
        print(f"   ({time.perf_counter() - start:.0f} s)")
    print("\nbenchmark   metric" + " " * 44 + "ratio   target" + " " * 24 + "result")
    for name, r in rows:
        print(f"{name:<11} {r['metric'][:48]:<50} {r['ratio']:7.3f}  {r['target']:<28}  {_verdict(r, args.quick)}")
    if args.quick:
        print("\n--quick: small data, where fixed start-up costs dominate; the targets hold for the full "
              "size only, so a quick run fails only when a benchmark errors.")
        return 0
    return 0 if all_ok else 1


def _verdict(row: dict, quick: bool) -> str:
    if quick:
        return "(smoke: would be OK)" if row["ok"] else "(smoke: full size decides)"
    return "OK" if row["ok"] else "MISSED"


if __name__ == "__main__":
    sys.exit(main())
