"""`serve`'s parts under the supervisor, in-process: a failing part is restarted with backoff
and reported unhealthy on /readyz (never silently dead), stops are bounded, and a stop lets
an in-flight HTTP request finish."""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from pydantic import SecretStr

from engine.app import Engine
from engine.metrics import REGISTRY
from engine.serve.service import Service
from engine.serve.supervisor import Backoff, Supervisor
from engine.settings import Settings
from tests.integration.test_api_routes import KEY, doc, free_port


class Flaky:
    """Fails its first `failures` runs (shared across instances), then runs until stopped."""

    attempts: list[float]

    def __init__(self, failures: int, attempts: list[float]) -> None:
        self.name = "flaky"
        self.failures = failures
        self.attempts = attempts
        self._stop = threading.Event()

    def run(self) -> None:
        self.attempts.append(time.monotonic())
        if len(self.attempts) <= self.failures:
            raise ConnectionError(f"attempt {len(self.attempts)} failed")
        self._stop.wait()

    def stop(self) -> None:
        self._stop.set()


class Stubborn:
    name = "stubborn"

    def __init__(self) -> None:
        self.release = threading.Event()

    def run(self) -> None:
        self.release.wait(30)

    def stop(self) -> None:
        """Ignores the request (a part stuck in a call)."""


class Quitter:
    name = "quitter"

    def run(self) -> None:
        return None

    def stop(self) -> None:
        return None


def restarts(part: str) -> float:
    value = REGISTRY.get_sample_value("docsync_serve_part_restarts_total", {"part": part})
    return value or 0.0


def wait_for(condition: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_a_failing_part_is_restarted_with_exponential_backoff() -> None:
    attempts: list[float] = []
    before = restarts("flaky")
    supervisor = Supervisor(Backoff(initial_s=0.05, max_s=0.4))
    supervisor.add("flaky", lambda: Flaky(4, attempts))
    supervisor.add("quitter", Quitter)
    supervisor.start()
    try:
        wait_for(lambda: len(attempts) == 5 and supervisor.status()["flaky"]["healthy"])
        status = supervisor.status()["flaky"]
        assert status["state"] == "running" and status["restarts"] == 4
        assert status["last_error"] == "ConnectionError: attempt 4 failed"
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        floors = [0.05, 0.1, 0.2, 0.4]  # doubling, capped at max_s (jitter only adds)
        assert all(gap >= floor for gap, floor in zip(gaps, floors, strict=True)), gaps
        assert restarts("flaky") - before == 4
        # a part that returns on its own is a failure too, not a silent exit
        wait_for(lambda: supervisor.status()["quitter"]["restarts"] >= 2)
        quitter = supervisor.status()["quitter"]
        assert not quitter["healthy"] and "returned without being asked" in quitter["last_error"]
        assert not supervisor.healthy()
    finally:
        assert supervisor.stop(5)
    assert {s["state"] for s in supervisor.status().values()} == {"stopped"}
    assert REGISTRY.get_sample_value("docsync_serve_part_up", {"part": "flaky"}) == 0


def test_stop_is_bounded_even_when_a_part_does_not_stop() -> None:
    supervisor = Supervisor()
    stuck = Stubborn()
    supervisor.add("stubborn", lambda: stuck)
    supervisor.start()
    wait_for(lambda: supervisor.status()["stubborn"]["state"] == "running")
    started = time.monotonic()
    assert supervisor.stop(0.5) is False
    assert time.monotonic() - started < 3
    stuck.release.set()


def test_readyz_reports_a_failing_listener_until_its_queue_exists(settings: Settings) -> None:
    s = settings.replace(
        {
            "queue": "late-events",
            "dlq": "late-events-dlq",
            "serve.consumer": False,
            "serve.scheduler": False,
            "serve.api_keys": SecretStr(KEY),
        }
    )
    engine = Engine.build(s)
    port = free_port()
    service = Service(engine, port=port, backoff=Backoff(initial_s=0.1, max_s=0.5)).start()
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            wait_for(lambda: _ready(http)["parts"]["listener"]["restarts"] >= 2)
            body = http.get("/readyz")
            assert body.status_code == 503
            listener = body.json()["parts"]["listener"]
            assert listener["restarts"] >= 2 and "QueueDoesNotExist" in listener["last_error"]
            assert body.json()["parts"]["api"]["healthy"] is True
            assert body.json()["aws"]["sqs"].startswith("unreachable")
            assert http.get("/v1/change", headers={"x-api-key": KEY}).status_code == 200

            sqs = engine.clients.sqs
            sqs.create_queue(QueueName="late-events-dlq")
            sqs.create_queue(QueueName="late-events")
            wait_for(lambda: http.get("/readyz").status_code == 200)
            ready = http.get("/readyz").json()
            assert ready["status"] == "ready" and ready["parts"]["listener"]["healthy"]
    finally:
        assert service.stop() is True
    assert {p["state"] for p in service.supervisor.status().values()} == {"stopped"}


def _ready(http: httpx.Client) -> dict[str, dict[str, dict[str, int]]]:
    data: dict[str, dict[str, dict[str, int]]] = http.get("/readyz").json()
    return data


def test_stop_lets_an_in_flight_request_finish(settings: Settings) -> None:
    s = settings.replace(
        {
            "serve.listener": False,
            "serve.consumer": False,
            "serve.scheduler": False,
            "serve.api_keys": SecretStr(KEY),
        }
    )
    engine = Engine.build(s)
    port = free_port()
    service = Service(engine, port=port).start()
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, headers={"x-api-key": KEY}, timeout=30) as http:
        wait_for(lambda: http.get("/readyz").status_code == 200)
        for n in range(20):
            http.put(f"/v1/change/CHG-{n}", json=doc(f"CHG-{n}"))
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(http.post, "/v1/reconcile", json={"mode": "report"})
            time.sleep(0.3)  # the reconcile is running inside the server
            assert not slow.done()
            stopped = service.stop()
            answer = slow.result(timeout=30)
    assert stopped is True
    assert answer.status_code == 200 and answer.json()["counts"]["in_sync"] == 20
    try:
        httpx.get(url + "/healthz", timeout=2)
        raise AssertionError("the server still accepts connections")
    except httpx.ConnectError:
        pass
