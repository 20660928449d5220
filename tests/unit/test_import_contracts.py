"""The layers of DESIGN.md as import-linter contracts (pyproject.toml [tool.importlinter]):
imports go downwards only. `make lint` runs lint-imports; this runs it in the suite, so CI
(which runs the README's test command) checks the contracts too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_layer_contracts_are_kept() -> None:
    run = lint_imports()
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "2 kept, 0 broken" in run.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    """The check can fail: the same contract with one more layer above the adapters that the
    adapters import (engine.keys) is broken."""
    config = (ROOT / "pyproject.toml").read_text()
    broken = config.replace(
        '    "engine.cli : engine.serve : engine.lambdas : engine.demo",',
        '    "engine.keys",\n    "engine.cli : engine.serve : engine.lambdas : engine.demo",',
    ).replace('    "engine.documents : engine.keys",', '    "engine.documents",')
    assert broken != config
    path = tmp_path / "contracts.toml"
    path.write_text(broken)
    run = lint_imports("--config", str(path))
    assert run.returncode == 1, run.stdout[-4000:]
    assert "is not allowed to import engine.keys" in run.stdout
