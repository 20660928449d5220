"""Build the Lambda artifact (`make package`): dist/docsync-lambda.zip for the Python runtime.

The zip holds `engine/` and `reconciler/` and the runtime dependencies exactly as pinned in
deploy/requirements-lambda.txt (versions and sha256 hashes), installed from manylinux x86_64
wheels for the runtime's Python; never moto, test tooling or dev extras. boto3/botocore are
pinned into the zip rather than taken from the runtime: the runtime's copy changes when AWS
updates it, and the code should run on the SDK it was tested with (the cost: ~20 MB).

    python deploy/package.py                 # build dist/docsync-lambda.zip (python 3.12)
    python deploy/package.py --lock          # regenerate the lock from pyproject's dependencies
    python deploy/package.py --python 3.11   # for the python3.11 runtime

The lock is resolved by pip itself (`pip install --dry-run --report`) for the Lambda platform,
once per supported Python, so the same pins carry the hashes of every wheel they may install.
The zip is reproducible: sorted entries, fixed timestamps. It carries bytecode compiled by an
interpreter of the target version when one is found (`pythonX.Y` on PATH, or this one): the
function's code directory is read-only, so without it every cold start compiles every import
(measured here: 2.1 s of imports without, 0.6 s with). The .pyc files use unchecked-hash
validation, so they hold regardless of the files' timestamps.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "deploy" / "requirements-lambda.txt"
OUT = ROOT / "dist" / "docsync-lambda.zip"
PACKAGES = ("engine", "reconciler")
PLATFORM = "manylinux2014_x86_64"
PYTHONS = ("3.11", "3.12")  # Lambda runtimes python3.11 and python3.12
DEFAULT_PYTHON = "3.12"
NEVER = ("moto", "pytest", "hypothesis", "mypy", "ruff", "schemathesis")
TASK_ROOT = "/var/task"  # where Lambda unpacks the zip
EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest date: the same bytes on every build


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", *args, "--disable-pip-version-check"]


def _platform(python: str) -> list[str]:
    return [
        "--platform",
        PLATFORM,
        "--python-version",
        python,
        "--implementation",
        "cp",
        "--only-binary=:all:",
    ]


def runtime_dependencies() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        deps: list[str] = tomllib.load(fh)["project"]["dependencies"]
    return deps


def resolve(python: str) -> dict[str, tuple[str, str]]:
    """name → (version, sha256 of the wheel pip picks for `python` on the Lambda platform)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        cmd = _pip(
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--target",
            str(Path(scratch) / "t"),
            "--report",
            str(report),
            *_platform(python),
            *runtime_dependencies(),
        )
        subprocess.run(cmd, check=True)
        data = json.loads(report.read_text())
    out = {}
    for item in data["install"]:
        name = item["metadata"]["name"].lower().replace("_", "-")
        digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
        out[name] = (item["metadata"]["version"], digest)
    return out


def lock() -> None:
    """Write the lock: one pin per package, with the hash of its wheel for every Python."""
    by_python = {python: resolve(python) for python in PYTHONS}
    names = sorted(set().union(*by_python.values()))
    lines = [
        "# The Lambda artifact's dependencies, pinned (deploy/package.py installs exactly these).",
        "# Regenerate after changing [project].dependencies: python deploy/package.py --lock",
        f"# Resolved for {PLATFORM}, CPython {', '.join(PYTHONS)}.",
    ]
    for name in names:
        pins = {by_python[p][name] for p in PYTHONS if name in by_python[p]}
        versions = {version for version, _ in pins}
        if len(versions) != 1 or any(name not in by_python[p] for p in PYTHONS):
            raise SystemExit(f"{name}: resolved differently per Python ({sorted(pins)})")
        if any(name == bad or name.startswith(bad + "-") for bad in NEVER):
            raise SystemExit(f"{name} must not be a runtime dependency")
        hashes = " ".join(f"--hash=sha256:{digest}" for digest in sorted({d for _, d in pins}))
        lines.append(f"{name}=={versions.pop()} {hashes}")
    LOCK.write_text("\n".join(lines) + "\n")
    print(f"wrote {LOCK.relative_to(ROOT)} ({len(names)} packages)")


def install(target: Path, python: str) -> None:
    cmd = _pip(
        "install",
        "--quiet",
        "--no-deps",
        "--require-hashes",
        "--no-compile",
        "--target",
        str(target),
        *_platform(python),
        "-r",
        str(LOCK),
    )
    subprocess.run(cmd, check=True)


def compiler(python: str, given: str | None = None) -> str | None:
    """An interpreter of version `python` that runs: `given`, this one, or `pythonX.Y`."""
    for candidate in (given, sys.executable, shutil.which(f"python{python}")):
        if candidate is None:
            continue
        probe = [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
        found = subprocess.run(probe, capture_output=True, text=True, check=False)
        if found.returncode == 0 and found.stdout.strip() == python:
            return candidate
    return None


def compile_bytecode(target: Path, python: str, given: str | None = None) -> bool:
    interpreter = compiler(python, given)
    if interpreter is None:
        print(
            f"warning: no python{python} found (--compiler): the zip has no bytecode,"
            " so every cold start compiles its imports"
        )
        return False
    cmd = [interpreter, "-m", "compileall", "-q", "-j", "0"]
    cmd += ["--invalidation-mode", "unchecked-hash", str(target)]
    cmd += ["-s", str(target), "-p", TASK_ROOT]  # tracebacks name the function's own paths
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return True


def _ignored(_: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo"))}


def build(out: Path, python: str, given: str | None = None) -> Path:
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "lambda"
        install(target, python)
        for package in PACKAGES:
            shutil.copytree(ROOT / package, target / package, ignore=_ignored)
        for cache in target.rglob("__pycache__"):
            shutil.rmtree(cache)
        compile_bytecode(target, python, given)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".zip.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for path in sorted(p for p in target.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(path.relative_to(target).as_posix(), EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, path.read_bytes())
        os.replace(partial, out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", action="store_true", help="regenerate the lock file")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--python", default=DEFAULT_PYTHON, choices=PYTHONS)
    parser.add_argument("--compiler", help="an interpreter of --python's version, for .pyc")
    args = parser.parse_args(argv)
    if args.lock:
        lock()
        return
    out = build(args.out, args.python, args.compiler)
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB, python{args.python}, {PLATFORM})")


if __name__ == "__main__":
    main()
