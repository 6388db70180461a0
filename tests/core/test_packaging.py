"""The wheel ships what a source checkout has: every task XML, every plugin, every entry point."""

import subprocess
import sys
import zipfile
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contents(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                          "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("almatools-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for xml in sorted((ROOT / "xml").glob("*.xml")):
        assert f"almatools/xml/{xml.name}" in names, f"{xml.name} is not shipped"
    plugin_dirs = [d for d in sorted((ROOT / "plugins").iterdir())
                   if (d / "__init__.py").is_file() and d.name != "template"]
    for d in plugin_dirs:
        for py in d.rglob("*.py"):
            rel = py.relative_to(ROOT / "plugins").as_posix()
            assert f"almatools/plugins/{rel}" in names, f"plugins/{rel} is not shipped (pyproject packages?)"
    assert not any(n.startswith("almatools/plugins/template/") for n in names), "the template is a separate dist"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    parser = ConfigParser()
    parser.read_string(zipfile.ZipFile(wheel).read(entry).decode())
    assert set(parser["almatools"]) == {d.name for d in plugin_dirs}
    assert parser["console_scripts"]["almatools"] == "almatools.cli:main"
