"""The generated registry index (archbench/models/registry_index.py) against the live registry, and what
listing and building one entry import."""

import subprocess
import sys

from archbench.models.listing import index_text, live_index
from archbench.models.registry_index import ENTRIES


def test_index_is_the_live_registry():
    # if this fails after a change to the registry: python -m archbench.models.listing
    live = live_index()
    assert ENTRIES == live
    from archbench.models.listing import INDEX_PATH

    assert INDEX_PATH.read_text() == index_text(live)


def imported_after(code: str) -> set[str]:
    """The heavy modules among those a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport sys; print(' '.join(m for m in ('torch', 'torchvision', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_list_imports_neither_torch_nor_torchvision():
    for args in ([], ["resnet*"], ["lstm", "--format", "json"]):
        code = ("import sys; from typer.testing import CliRunner; from archbench.cli import app;"
                f"r = CliRunner().invoke(app, ['list', *{args!r}]); assert r.exit_code == 0, r.output;"
                "assert 'resnet50' in r.output or 'lstm' in r.output")
        assert imported_after(code) == set(), args


def test_an_entry_imports_only_its_own_module():
    assert "torchvision" not in imported_after("from archbench.models.registry import get_entry; get_entry('lstm')")
    assert "torchvision" in imported_after("from archbench.models.registry import get_entry; get_entry('resnet50')")
