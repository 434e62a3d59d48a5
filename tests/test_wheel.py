"""A wheel built from the tree works outside a checkout (issue 19): the claims ship as package data.

The wheel is built without network (this environment's setuptools), installed with ``--no-deps``
into a fresh virtual environment in a temporary folder, which sees this environment's packages
(torch, transformers...) through a ``.pth`` file instead of installing them again. Its
``archbench`` then runs from another folder, with nothing of the checkout on its path.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _not_sources(folder: str, names: list[str]) -> set[str]:
    """What the copy of the checkout leaves out: git, environments, build outputs, caches, the results folder."""
    skipped = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache"} | ({"results"} if Path(folder) == ROOT
                                                                                      else set())
    return {name for name in names if name in skipped or name.endswith(".egg-info")}


def run(command, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the venv's archbench script, a folder outside the checkout, the environment to run it in, seconds taken)."""
    started = time.perf_counter()
    where = tmp_path_factory.mktemp("wheel")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["XDG_STATE_HOME"] = str(where / "state")
    source = where / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT, source, ignore=_not_sources)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w",
         str(where / "dist"), str(source)], cwd=where, env=env)
    wheel = next((where / "dist").glob("archbench-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        assert "archbench/claims/claims.yaml" in archive.namelist()
    venv = where / "venv"
    base = getattr(sys, "_base_executable", sys.executable)  # a venv of the interpreter itself, not of this venv
    run([base, "-m", "venv", str(venv)], cwd=where, env=env)
    python = venv / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=where, env=env).stdout.strip())
    run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], cwd=where, env=env)
    # then torch & co. from this environment (its .pth files, among them archbench's editable install, are not read)
    (site / "shared-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    outside = where / "elsewhere"
    outside.mkdir()
    return venv / "bin" / "archbench", outside, env, time.perf_counter() - started


def test_the_installed_wheel_is_the_one_run(installed):
    script, outside, env, _ = installed
    python = script.parent / "python"
    done = run([str(python), "-c", "import archbench; print(archbench.__file__)"], cwd=outside, env=env)
    assert done.stdout.strip().startswith(str(script.parent.parent))


def test_claims_and_flops_outside_a_checkout(installed):
    script, outside, env, setup_s = installed
    started = time.perf_counter()
    claims = run([str(script), "claims", "--only", "C09", "--format", "json"], cwd=outside, env=env)
    assert json.loads(claims.stdout)["meta"]["verdicts"] == {"C09": "holds"}
    flops = run([str(script), "flops", "resnet18", "--format", "json"], cwd=outside, env=env)
    macs = [r["value"] for r in json.loads(flops.stdout)["records"] if r["metric"] == "macs"]
    assert macs == [1_814_073_344]  # torchvision's table: 1.81 GMACs
    print(f"wheel test: build + venv + install {setup_s:.1f} s, two commands {time.perf_counter() - started:.1f} s")
