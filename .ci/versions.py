"""Print the installed packages whose versions differ from a constraints file: python versions.py constraints.txt.

Used by `make test-latest` to name the releases a failing newest-release run differs by."""

import re
import sys
from importlib.metadata import distributions


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


pinned = {}
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#")[0].strip()
    if "==" in line:
        name, version = line.split("==", 1)
        pinned[normal(name)] = version.strip()
installed = {normal(d.metadata["Name"]): d.version for d in distributions()}
moved = [f"{name} {pinned[name]} -> {installed[name]}" for name in sorted(pinned)
         if name in installed and installed[name] != pinned[name]]
new = [f"{name} {installed[name]} (not in the constraints)" for name in sorted(set(installed) - set(pinned))
       if name not in ("archbench", "pip", "setuptools", "wheel")]
print(f"versions differing from {sys.argv[1]}: " + ("; ".join(moved + new) if moved or new else "none"))
