"""HTTP load: 100 concurrent clients against `docsync serve` vs the same reads through the
library directly, on the embedded moto server: cached gets and queries, p50/p99 and throughput.

Run: .venv/bin/python bench/http_load.py [--documents 2000] [--clients 100]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from _common import MOTO_CAVEAT, harness, print_table
from read_path import load_corpus

from engine.app import Engine
from engine.documents import Document
from engine.reader import Query
from engine.sample import CUSTOMERS

DOCSYNC = Path(sys.executable).parent / "docsync"

Request = tuple[str, dict[str, Any]]  # (path, query params)


@dataclass
class Run:
    label: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)

    def figures(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        n = len(lat)
        return {
            "requests": n,
            "p50_ms": statistics.median(lat) * 1000 if lat else float("nan"),
            "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1000 if lat else float("nan"),
            "mean_ms": statistics.fmean(lat) * 1000 if lat else float("nan"),
            "per_s": n / self.seconds if self.seconds else float("nan"),
            "outcomes": dict(self.statuses),
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_serve(endpoint: str, key: str, concurrency: int) -> tuple[subprocess.Popen[str], str]:
    """`docsync serve` with only the API part (the listener, consumer and scheduler would
    compete for the same serialized moto), rate limit off, logs at WARNING."""
    port = free_port()
    env = os.environ | {
        "DOCSYNC_ENDPOINT_URL": endpoint,
        "DOCSYNC_SERVE_API_KEYS": key,
        "DOCSYNC_SERVE_LISTENER": "false",
        "DOCSYNC_SERVE_CONSUMER": "false",
        "DOCSYNC_SERVE_SCHEDULER": "false",
        "DOCSYNC_SERVE_RATE_LIMIT_PER_MINUTE": "0",
        "DOCSYNC_CONCURRENCY": str(concurrency),
        "DOCSYNC_AWS_MAX_ATTEMPTS": "2",
        "DOCSYNC_LOG_LEVEL": "WARNING",
        "DOCSYNC_LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [str(DOCSYNC), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited: {proc.communicate()[1][-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("serve did not become ready")


def run_http(url: str, key: str, requests: list[Request], clients: int, label: str) -> Run:
    """`clients` threads, each one keep-alive connection (http.client: the lightest client
    here; httpx.AsyncClient with 100 connections measured ~120 req/s on /healthz, where this
    does ~2,700), taking requests from one shared list."""
    run = Run(label)
    host, port = url.removeprefix("http://").split(":")
    lock = threading.Lock()
    pending = iter(requests)
    headers = {"x-api-key": key}

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        conn.request("GET", "/healthz")  # connect before the clock starts
        conn.getresponse().read()
        barrier.wait()
        while True:
            with lock:
                item = next(pending, None)
            if item is None:
                break
            path, params = item
            target = f"{path}?{urlencode(params)}" if params else path
            started = time.perf_counter()
            conn.request("GET", target, headers=headers)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            outcome = response.getheader("x-docsync-cache") or response.getheader(
                "x-docsync-source", ""
            )
            with lock:
                run.latencies.append(elapsed)
                run.statuses[f"{response.status} {outcome}".strip()] += 1
        conn.close()

    barrier = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - started
    return run


def run_library(calls: list[Callable[[], str]], clients: int, label: str) -> Run:
    run = Run(label)
    lock = threading.Lock()

    def one(call: Callable[[], str]) -> None:
        started = time.perf_counter()
        outcome = call()
        elapsed = time.perf_counter() - started
        with lock:
            run.latencies.append(elapsed)
            run.statuses[f"200 {outcome}"] += 1

    with ThreadPoolExecutor(clients) as pool:
        started = time.perf_counter()
        list(pool.map(one, calls))
        run.seconds = time.perf_counter() - started
    return run


def workloads(
    docs: list[Document], gets: int, queries: int, limit: int, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str | None]]]:
    rng = random.Random(seed)
    get_targets = [(d.type, d.id) for d in rng.choices(docs, k=gets)]
    query_targets = [
        (rng.choice(["change", "announcement"]), rng.choice([None, *CUSTOMERS]))
        for _ in range(queries)
    ]
    return get_targets, query_targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--gets", type=int, default=3000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--limit", type=int, default=20, help="page size of the queries")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with harness() as h:
        docs = load_corpus(h, args.documents, args.seed)
        settings = h.settings.model_copy(update={"concurrency": args.clients})
        library = Engine.build(settings)  # same knobs as the server's engine
        key = secrets.token_urlsafe(24)
        proc, url = start_serve(h.server.endpoint, key, args.clients)
        try:
            get_targets, query_targets = workloads(
                docs, args.gets, args.queries, args.limit, args.seed
            )
            http_gets: list[Request] = [(f"/v1/{t}/{i}", {}) for t, i in get_targets]

            def lib_get(t: str, i: str) -> Callable[[], str]:
                return lambda: library.reader.get(t, i).cache

            lib_gets = [lib_get(t, i) for t, i in get_targets]

            def query_params(customer: str | None) -> dict[str, Any]:
                params: dict[str, Any] = {"limit": args.limit}
                if customer:
                    params["customer"] = customer
                return params

            http_queries: list[Request] = [(f"/v1/{t}", query_params(c)) for t, c in query_targets]

            def lib_query(t: str, c: str | None) -> Callable[[], str]:
                return lambda: (
                    library.reader.query(Query(types=(t,), customer=c, limit=args.limit)).source
                )

            lib_queries = [lib_query(t, c) for t, c in query_targets]
            # same answers both ways (checked once, before timing)
            for t, c in query_targets[:5]:
                via_http = httpx.get(
                    f"{url}/v1/{t}", params=query_params(c), headers={"x-api-key": key}
                ).json()["items"]
                direct = library.reader.query(Query(types=(t,), customer=c, limit=args.limit))
                assert via_http == direct.items, (t, c)

            runs: dict[str, Run] = {}
            variants: tuple[tuple[str, Callable[[], Run]], ...] = (
                ("gets/http", lambda: run_http(url, key, http_gets, args.clients, "gets/http")),
                ("gets/library", lambda: run_library(lib_gets, args.clients, "gets/library")),
                (
                    "queries/http",
                    lambda: run_http(url, key, http_queries, args.clients, "queries/http"),
                ),
                (
                    "queries/library",
                    lambda: run_library(lib_queries, args.clients, "queries/library"),
                ),
            )
            for name, fn in variants:
                print(f"running {name} ...", file=sys.stderr, flush=True)
                runs[name] = fn()
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=60)
            stopped = proc.returncode

    figures = {name: run.figures() for name, run in runs.items()}
    print(
        f"\n{args.clients} concurrent clients; corpus {args.documents} documents (all cached);"
        f" {args.gets} gets, {args.queries} queries (limit {args.limit}, random type and"
        " customer). HTTP: `docsync serve` (API part only) in its own process, as many client"
        " threads here, each with a keep-alive connection; library: Engine.reader in a pool"
        " of as many threads, in this process."
    )
    rows = [
        [
            name,
            f["requests"],
            f["p50_ms"],
            f["p99_ms"],
            f["mean_ms"],
            f["per_s"],
            ", ".join(f"{k}: {v}" for k, v in sorted(f["outcomes"].items())),
        ]
        for name, f in figures.items()
    ]
    print_table(
        "latency and throughput",
        ["run", "requests", "p50 ms", "p99 ms", "mean ms", "req/s", "outcomes"],
        rows,
    )
    ratios = {}
    for work in ("gets", "queries"):
        h_fig, l_fig = figures[f"{work}/http"], figures[f"{work}/library"]
        ratios[work] = {
            "p50": h_fig["p50_ms"] / l_fig["p50_ms"],
            "p99": h_fig["p99_ms"] / l_fig["p99_ms"],
            "throughput": h_fig["per_s"] / l_fig["per_s"],
        }
    print_table(
        "HTTP / library (latency > 1: HTTP slower; throughput < 1: HTTP fewer per second)",
        ["workload", "p50 ratio", "p99 ratio", "throughput ratio"],
        [[w, r["p50"], r["p99"], r["throughput"]] for w, r in ratios.items()],
    )
    print(f"\nserve exit code after SIGTERM: {stopped}")
    print(MOTO_CAVEAT)
    print(json.dumps({"figures": figures, "ratios": ratios, "serve_exit": stopped}))
    if stopped != 0:
        print(err[-2000:], file=sys.stderr)


if __name__ == "__main__":
    main()
