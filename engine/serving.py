"""The campaign server: models kept in memory for real-time requests, in one process made for serving.

The web workers resolve a request (campaign -> model file, seed, exploration, filter, dataset files) and
send it here over a unix socket; this process keeps the last ``max_models`` models loaded (least recently
used goes first) and answers through :mod:`engine.realtime`, the batch runner's own code path. So a model
is held once per machine, not once per web worker, and a web worker's memory does not grow with the number
of campaigns.

Wire format: each message is a 4-byte big-endian length and that many bytes of JSON; a connection carries
any number of request/response pairs. Run it as ``python -m engine.serving --socket PATH``.

:class:`ModelServer` is also usable in-process (tests, ``manage.py runserver``), with the same answers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import socketserver
import struct
import sys
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from engine import datasets as engine_datasets
from engine.artifacts import load_model
from engine.filters import FilterError, compile_filter
from engine.realtime import QueryError, answer
from engine.realtime_updates import with_new_events

__all__ = ["ModelServer", "ServingClient", "ServingUnavailable", "serve"]

_HEADER = struct.Struct("!I")
# Requests are small (a query, ARNs, paths); anything bigger is not from our web workers.
_MAX_MESSAGE = 8 * 1024 * 1024

_LOADERS = {
    "INTERACTIONS": engine_datasets.load_interactions,
    "ITEMS": engine_datasets.load_items,
    "USERS": engine_datasets.load_users,
}


class ServingUnavailable(RuntimeError):
    """The campaign server could not be reached."""


def _load_dataset(kind: str, path: str | None):
    if not path:
        return None
    with open(path, "rb") as fh:
        return _LOADERS[kind](fh)


class _Lru:
    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[Any, threading.Lock] = {}

    def get(self, key, load):
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            # One load per key at a time: concurrent first requests for a model wait for the same load.
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._entries:
                    return self._entries[key]
            value = load()
            with self._lock:
                self._entries[key] = value
                self._loading.pop(key, None)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return value

    def __len__(self):
        return len(self._entries)


class ModelServer:
    """Answers resolved requests from models it keeps loaded (LRU by the model file's checksum).

    A request is a dict: ``artifact`` and ``checksum`` (the model file), ``query`` (the batch line's object),
    ``input_kind``, ``num_results``, ``exploration``, ``seed``, optionally ``filter`` (``key``, ``expression``,
    ``target``, ``files``: dataset type -> imported file), ``metadata`` (``items_file``, ``columns``) and
    ``events`` (the items of the user's events newer than the model, oldest first: real-time updates).
    The reply is ``{"items", "scores", "metadata"}`` or ``{"error": {"code", "message"}}``.
    """

    def __init__(self, max_models: int = 4):
        self._models = _Lru(max_models)
        self._filters = _Lru(8)
        self._items = _Lru(4)

    @property
    def loaded_models(self) -> int:
        return len(self._models)

    def model(self, artifact: str, checksum: str):
        return self._models.get(checksum or artifact, lambda: load_model(artifact))

    def _filter(self, spec: dict, model, checksum: str):
        files = spec.get("files") or {}
        key = (spec["key"], spec["expression"], checksum, tuple(sorted(files.items())))

        def build():
            by_user = spec.get("target") == "UserID"
            targets = {"user_ids": model.user_map_.ids} if by_user else {"item_ids": model.item_map_.ids}
            return compile_filter(
                spec["expression"],
                interactions=_load_dataset("INTERACTIONS", files.get("INTERACTIONS")),
                items=_load_dataset("ITEMS", files.get("ITEMS")),
                users=_load_dataset("USERS", files.get("USERS")),
                **targets,
            )

        return self._filters.get(key, build)

    def _item_metadata(self, items_file: str):
        def build():
            items = _load_dataset("ITEMS", items_file)
            index = {item: i for i, item in enumerate(items.item_ids.tolist())}
            return items, index

        return self._items.get(items_file, build)

    def handle(self, request: dict) -> dict:
        try:
            model = self.model(request["artifact"], request.get("checksum", ""))
        except FileNotFoundError:
            return _error("ResourceNotFoundException", "The campaign's model is missing from the artifact store.")
        if request.get("events"):
            # The user's events newer than the model (PutEvents): a one-user view of the model with them.
            model = with_new_events(model, request["query"].get("userId", ""), request["events"])
        item_filter = None
        if request.get("filter"):
            try:
                item_filter = self._filter(request["filter"], model, request.get("checksum", ""))
            except FilterError as exc:
                return _error("InvalidInputException", f"The filter cannot be applied: {exc}")
        try:
            result = answer(
                model, request["query"], input_kind=request["input_kind"], num_results=request["num_results"],
                exploration=request.get("exploration") or {}, seed=int(request.get("seed", 0)),
                item_filter=item_filter,
            )
        except QueryError as exc:
            return _error("InvalidInputException", str(exc))
        reply: dict[str, Any] = {"items": result.items, "scores": result.scores}
        spec = request.get("metadata")
        if spec:
            reply["metadata"] = self._metadata(result.items, spec)
        return reply

    def _metadata(self, item_ids: list[str], spec: dict) -> list[dict]:
        columns = list(spec.get("columns") or [])
        if not spec.get("items_file"):
            return [{} for _ in item_ids]
        items, index = self._item_metadata(spec["items_file"])
        out = []
        for item in item_ids:
            row = index.get(item)
            values = {}
            for name in columns:
                column = items.columns.get(name.upper())
                if row is not None and column is not None:
                    value = column[row]
                    values[name] = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
            out.append(values)
        return out


def _error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


# ----------------------------------------------------------------------------------------------- wire


def _send(sock: socket.socket, message: dict) -> None:
    data = json.dumps(message, separators=(",", ":")).encode("utf-8", "surrogatepass")
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _recv(sock: socket.socket) -> dict | None:
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    (length,) = _HEADER.unpack(header)
    if length > _MAX_MESSAGE:
        raise ValueError(f"message of {length} bytes")
    body = _recv_exact(sock, length)
    if body is None:
        return None
    return json.loads(body.decode("utf-8", "surrogatepass"))


class ServingClient:
    """A web worker's side: one connection per thread, opened on first use and again after a failure."""

    def __init__(self, path: str, timeout: float = 30.0):
        self.path = path
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self) -> socket.socket:
        sock = getattr(self._local, "sock", None)
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
            except OSError:
                sock.close()
                raise
            self._local.sock = sock
        return sock

    def _drop(self) -> None:
        sock = getattr(self._local, "sock", None)
        self._local.sock = None
        if sock is not None:
            sock.close()

    def handle(self, request: dict) -> dict:
        # A kept connection may have been closed by a restarted server: one fresh try, then give up.
        for attempt in range(2):
            try:
                sock = self._connection()
                _send(sock, request)
                reply = _recv(sock)
                if reply is None:
                    raise ConnectionError("the campaign server closed the connection")
                return reply
            except (OSError, ValueError) as exc:
                self._drop()
                if attempt == 1:
                    raise ServingUnavailable(f"The campaign server at {self.path} did not answer: {exc}") from None
        raise AssertionError("unreachable")


# ----------------------------------------------------------------------------------------------- server


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: ModelServer = self.server.model_server  # type: ignore[attr-defined]
        while True:
            try:
                request = _recv(self.request)
            except (OSError, ValueError):
                return
            if request is None:
                return
            try:
                reply = server.handle(request)
            except Exception as exc:  # one bad request must not take the server down
                reply = _error("InternalFailure", f"{type(exc).__name__}: {exc}")
            try:
                _send(self.request, reply)
            except OSError:
                return


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(path: str, max_models: int = 4) -> None:
    """Serve on the unix socket ``path`` (owner-only) until SIGTERM or SIGINT."""
    if os.path.exists(path):
        os.unlink(path)
    old_umask = os.umask(0o177)
    try:
        server = _UnixServer(path, _Handler)
    finally:
        os.umask(old_umask)
    server.model_server = ModelServer(max_models)  # type: ignore[attr-defined]

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--max-models", type=int, default=int(os.environ.get("CAMPAIGN_MAX_MODELS", "4")))
    args = parser.parse_args(argv)
    print(f"campaign server on {args.socket} (up to {args.max_models} models)", file=sys.stderr, flush=True)
    serve(args.socket, args.max_models)


if __name__ == "__main__":
    main()
