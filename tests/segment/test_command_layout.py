"""Command modules apart from the library: no library module imports ``segment.commands``
(or another package's command module), and ``segment.backends`` / ``segment.export`` import
in either order without a circle (docs/design.md, "Layers")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Every subcommand module named by segment.cli.COMMANDS, plus the shared options.
COMMAND_MODULES = ("segment.commands", "segment.cli", "train.cli", "train.eval_cli", "train.export_weights",
                   "train.small_input_stats",
                   "serve.cli", "serve.latency_cli", "data.cli", "data.synth_cli")


def _imported(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _commands_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == c or m.startswith(c + ".") for c in COMMAND_MODULES))


LIBRARY_IMPORTS = (
    "segment.backends", "segment.export", "segment.bundled", "segment.predict",
    "segment.bench", "segment.zoo", "segment.report", "data.loadbench", "train.checkpointing",
)


def test_library_imports_no_command_module():
    # One fresh interpreter imports the library modules one after another and records, after
    # each, the command modules loaded so far (one process: each start costs seconds of torch).
    script = ("import importlib, json, sys\nseen = {}\n"
              f"for name in {LIBRARY_IMPORTS!r}:\n"
              "    importlib.import_module(name)\n"
              f"    seen[name] = sorted(m for m in sys.modules if any(m == c or m.startswith(c + '.') for c in {COMMAND_MODULES!r}))\n"
              "print(json.dumps(seen))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {name: [] for name in LIBRARY_IMPORTS}


@pytest.mark.parametrize("code", ["import segment.backends, segment.export", "import segment.export, segment.backends"])
def test_export_and_backends_import_in_either_order(code):
    assert {"segment.export", "segment.backends"} <= _imported(code)


def test_export_library_does_not_import_backends():
    # segment.export is a leaf (torch + segment.atomic): the old circle with segment.backends is gone.
    assert "segment.backends" not in _imported("import segment.export")


def test_serve_imports_no_command_module():
    pytest.importorskip("gradio")
    modules = _imported("import serve.app, serve.segmentation")
    assert "serve.app" in modules
    assert _commands_in(modules) == []


def test_command_modules_are_where_the_entry_point_says():
    from segment.cli import COMMANDS

    for name in ("zoo", "export", "predict", "bench", "report"):  # the subcommands segment itself owns
        assert COMMANDS[name][0] == f"segment.commands.{name}"
    for module_name, _ in COMMANDS.values():
        assert (ROOT / (module_name.replace(".", "/") + ".py")).is_file(), module_name
