"""The embedded AWS: a moto server on 127.0.0.1, for `docsync local`, the demo and the tests.

Not ThreadedMotoServer as is: its app is wrapped in a lock so that moto handles one request at
a time (its conditional writes are not atomic under thread switching; races seen by tests must
be the engine's) — except SQS long polls, which wait inside moto —, werkzeug's per-request log
is silenced, and state can be reset over HTTP. moto's TransactWriteItems is patched to back up
only the items it touches (see `_cheap_transaction_backups`).

moto is an extra (`docsync[local]`), never in a deployed artifact: it is imported only when a
server starts, and its absence is a ConfigError that says what to install.
"""

from __future__ import annotations

import copy
import functools
import logging
import threading
import types
import urllib.request
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from engine.exceptions import ConfigError

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

INSTALL_HINT = "pip install 'docsync[local]'"

TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class _SerializedApp:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET", "").endswith(".ReceiveMessage"):
            # A long poll sleeps inside moto until a message arrives: holding the lock would
            # stop the very requests that send one.
            return list(self._app(environ, start_response))
        with self._lock:
            # Drain the body inside the lock: moto may stream it lazily.
            return list(self._app(environ, start_response))


def _cheap_transaction_backups() -> None:
    """moto 5 backs up a TransactWriteItems by deep-copying every table it touches, once per
    action (stream records included): 200 ms per write at a few thousand items, growing with
    the table. Back up only the items the transaction names instead, and restore them (and
    the stream) when it is cancelled; moto's own logic decides everything else. Idempotent."""
    import moto.dynamodb.models as ddb_models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    backend_cls = ddb_models.DynamoDBBackend
    if getattr(backend_cls.transact_write_items, "_docsync_patched", False):
        return
    original = backend_cls.transact_write_items

    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    ddb_models.copy = types.SimpleNamespace(deepcopy=deepcopy)  # type: ignore[attr-defined,assignment]

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        backups: dict[tuple[str, str, str], tuple[Any, Any, Any, Any]] = {}
        streams: dict[str, tuple[Any, int]] = {}
        for action in transact_items:
            for op in action.values():
                name = op.get("TableName")
                if name not in self.tables:
                    continue
                table = self.tables[name]
                source = op.get("Key") or op.get("Item") or {}
                if table.hash_key_attr not in source:
                    continue
                hash_key = DynamoType(source[table.hash_key_attr])
                range_attr = table.range_key_attr
                range_key = DynamoType(source[range_attr]) if range_attr in source else None
                current = table.get_item(hash_key, range_key)
                backups.setdefault(
                    (name, str(hash_key), str(range_key)),
                    (table, hash_key, range_key, copy.deepcopy(current)),
                )
                if table.stream_shard is not None:
                    streams.setdefault(name, (table.stream_shard, len(table.stream_shard.items)))
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in backups.values():
                holder = table.items[hash_key] if range_key is not None else table.items
                slot = range_key if range_key is not None else hash_key
                if item is None:
                    holder.pop(slot, None)
                else:
                    holder[slot] = item
            for shard, length in streams.values():
                del shard.items[length:]
            raise

    transact_write_items._docsync_patched = True  # type: ignore[attr-defined]
    backend_cls.transact_write_items = transact_write_items  # type: ignore[method-assign]


class EmbeddedMoto:
    """A moto server in a daemon thread. `port=0` picks a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> EmbeddedMoto:
        try:
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                MotoRequestHandler,
                create_backend_app,
            )
            from werkzeug.serving import make_server
        except ImportError as exc:
            raise ConfigError(
                f"the embedded AWS (moto) is not installed ({exc.name}): {INSTALL_HINT}"
                " — `docsync local`, `docsync demo` and the tests need it; a deployment does not"
            ) from exc
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        _cheap_transaction_backups()
        app = _SerializedApp(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._host, self._port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-server", daemon=True
        )
        self._thread.start()
        return self

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://{self._host}:{self._server.server_port}"

    def reset(self) -> None:
        """Drop every bucket, table and queue (moto's state outlives a server stop)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> EmbeddedMoto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
