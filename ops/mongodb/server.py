#!/usr/bin/env python3
"""MongoDB-compatible test server for Emporium: mongoeco's wire server, made fit for the Rust driver.

Runs PyPI ``mongoeco`` 4.11.0's wire server (``mongoeco.wire.proxy.AsyncMongoEcoProxyServer``)
with its in-memory engine on a loopback address, after correcting three incompatibilities between
that server and the official Rust ``mongodb`` crate (3.x) (see shared/MONGODB.md) and three mongoeco
bugs that the product catalog would hit (fixes 4-6 below).

Usage (with the venv made by ops/mongodb/install.sh):

    python server.py [--port 0] [--port-file FILE] [--host 127.0.0.1] [--watch-pid PID]
                     [--driver-fixes-only | --no-fixes]

When the listener is up it writes the port to FILE (atomically, if asked) and prints exactly one
line to stdout:

    mongodb-compatible server listening on 127.0.0.1:PORT

SIGTERM or SIGINT closes the listener, the open connections and the engine, and exits 0.
With --watch-pid it also exits when that process is gone (so a killed test run leaves no server).
Everything lives in memory: each start begins with no databases.

The three fixes for the Rust driver, applied by ``apply_rust_driver_fixes()`` before the server
starts:

1. Cursor ids. The Rust driver deserialises ``cursor.id`` of find/aggregate/listIndexes/
   listCollections/getMore replies as an i64 and fails on any other BSON type. mongoeco keeps
   cursor ids as small Python ints (1, 2, ... and 0 for exhausted) and pymongo's ``bson`` encodes a
   Python int that fits in 32 bits as BSON int32. Fix: the reply encoder is wrapped so that
   ``cursor.id`` is always an ``bson.int64.Int64`` (BSON int64) on the wire.
2. Int64 command fields. The Rust driver sends ``limit``, ``skip``, ``batchSize``, ``maxTimeMS``,
   ``getMore`` (the cursor id) and ``killCursors``' ``cursors`` as BSON int64. mongoeco's wire
   layer decodes BSON int64 into its own ``BsonInt64`` wrapper (not an ``int``), and its command
   validators (``isinstance(value, int)``) then reject the command ("... must be a non-negative
   integer"). Fix: before validation, exactly those fields (and ``cursor.batchSize`` of
   aggregate/listCollections/listIndexes) are turned back into plain ints; documents, filters and
   updates are left untouched, so stored values keep their BSON type.
3. Error codes. The Rust driver decodes a failed command reply (``ok: 0``) into
   ``CommandError { code: i32, codeName, errmsg }``; without a numeric ``code`` it reports an
   undecodable reply instead of the server's error. mongoeco omits ``code`` for errors raised
   without one (plain TypeError/ValueError, OperationFailure() without a code, ...), and sends
   ``code: null`` for some protocol errors. Fix: the error-document builder adds a code where
   mongoeco gave none (59 CommandNotFound for unsupported commands, 14 TypeMismatch for a
   TypeError, 2 BadValue for a ValueError, else 8 UnknownError), and the reply encoder adds
   8 UnknownError to any ``ok: 0`` reply that still has no integer code. Errors that already carry
   a code (E11000 duplicate key = 11000, "Unsupported query operator" = 2, ...) pass through unchanged.

Three further fixes, found with ops/mongodb/probe, correct mongoeco bugs that any client hits
(not only the Rust driver) in what the product catalog does; ``apply_engine_fixes()`` applies them
(``--driver-fixes-only`` leaves them out):

4. Sizes of Decimal128/Int64 values. ``listDatabases`` (the driver's ``list_database_names()``),
   ``dbStats``, ``collStats`` and the ``$bsonSize`` operator compute BSON sizes with
   ``core.aggregation.runtime._bson_value_size``, which knows plain int/float/str/... but not the
   Decimal128 values (pymongo's ``bson.Decimal128`` or mongoeco's own) that documents stored through
   the wire hold, and fails with "$bsonSize cannot encode value of type Decimal128" - so
   ``list_database_names()`` fails as soon as any collection holds a price. Fix: Decimal128 and the
   Int64/Int32/Double wrappers get their BSON sizes (16, 8, 4, 8 bytes) before the original
   function is consulted.
5. ``$inc`` of an Int64 field. The driver sends ``{$inc: {n: Int64(5)}}`` on a field stored as
   Int64; mongoeco's ``core.bson_scalars._wrap_numeric_result`` returns an int32 whenever the sum
   fits in 32 bits, so the field changes type to Int32 (MongoDB keeps Int64 when either operand is
   Int64). Fix: a result that came back as BsonInt32 while an operand was BsonInt64 is returned as
   BsonInt64. (Int32 + Int32 stays Int32; doubles and decimals are untouched.)
6. ``$text`` with an inclusion projection. With a ``$text`` filter mongoeco carries each matched
   document as a ``RuntimeDocumentState`` (a Mapping, not a dict, holding the text score), and
   ``core.projections._apply_inclusion_tree`` only descends into dicts, so
   ``find({$text: ...}, projection {sku: 1, score: {$meta: "textScore"}})`` returned only ``_id`` and
   the score. Fix: the inclusion tree is applied to the wrapped document itself.

mongoeco is pinned to 4.11.0 (ops/mongodb/install.sh): these fixes reach into its internals, so
this script refuses to run against another version, and checks that every patched name exists.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import ipaddress
import os
import signal
import sys
import tempfile

PINNED_MONGOECO = "4.11.0"
READY_PREFIX = "mongodb-compatible server listening on"


def _fail(message: str, code: int = 2) -> None:
    print(f"ops/mongodb/server.py: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


# --------------------------------------------------------------------------------------------
# The fixes
# --------------------------------------------------------------------------------------------

# Command fields that the Rust driver sends as BSON int64 and mongoeco's validators want as int.
_INT64_TOP_LEVEL_FIELDS = ("limit", "skip", "batchSize", "maxTimeMS", "getMore", "ntoreturn")
# Commands whose ``cursor`` sub-document may carry a batchSize (int64 from the driver).
_CURSOR_OPTION_COMMANDS = ("aggregate", "listCollections", "listIndexes")

# Code chosen where mongoeco gave none (fix 3). Names are MongoDB's own code names.
_UNKNOWN_ERROR = (8, "UnknownError")
_BAD_VALUE = (2, "BadValue")
_TYPE_MISMATCH = (14, "TypeMismatch")
_COMMAND_NOT_FOUND = (59, "CommandNotFound")


def apply_rust_driver_fixes() -> None:
    """Patch mongoeco 4.11.0's wire layer in place (idempotent). See the module docstring."""
    from bson.int64 import Int64

    from mongoeco.core.bson_scalars import BsonInt64
    from mongoeco.wire import executor as wire_executor
    from mongoeco.wire import proxy as wire_proxy

    executor_cls = wire_executor.WireCommandExecutor
    if getattr(executor_cls, "_emporium_patched", False):
        return
    # Fail fast, with a clear message, if the internals these fixes rely on have moved.
    for owner, name in (
        (executor_cls, "_build_request_context"),
        (executor_cls, "error_document"),
        (wire_proxy, "encode_op_msg_response"),
        (wire_proxy, "encode_op_reply"),
        (wire_proxy, "AsyncMongoEcoProxyServer"),
    ):
        if not hasattr(owner, name):
            _fail(f"mongoeco internals changed: {getattr(owner, '__name__', owner)}.{name} is missing")

    def as_int(value):
        # mongoeco decodes BSON int64 into BsonInt64(value=...); the validators want a plain int.
        return value.value if isinstance(value, BsonInt64) else value

    # ---- Fix 2: Int64 in limit/skip/batchSize/maxTimeMS/getMore/killCursors ----------------
    # The driver sends e.g. {find: "products", limit: Int64(10), skip: Int64(20), ...} and
    # {getMore: Int64(<cursor id>), collection: "products", batchSize: Int64(n)}.
    # mongoeco: bson_bridge.decode_wire_value() turns each Int64 into BsonInt64, then
    # _executor_validation rejects it ("wire find limit must be a non-negative integer",
    # "wire getMore cursor id must be an integer", ...).
    # Fix: _build_request_context() (called by the proxy for every decoded OP_MSG/OP_QUERY body,
    # before validation) first rewrites those option fields to plain ints.
    original_build = executor_cls._build_request_context

    def build_request_context(self, body, *args, **kwargs):
        if isinstance(body, dict) and body:
            command_name = next(iter(body))
            for field in _INT64_TOP_LEVEL_FIELDS:
                if field in body:
                    body[field] = as_int(body[field])
            if command_name in _CURSOR_OPTION_COMMANDS and isinstance(body.get("cursor"), dict):
                cursor = body["cursor"]
                if "batchSize" in cursor:
                    cursor["batchSize"] = as_int(cursor["batchSize"])
            if command_name == "killCursors" and isinstance(body.get("cursors"), list):
                body["cursors"] = [as_int(cursor_id) for cursor_id in body["cursors"]]
        return original_build(self, body, *args, **kwargs)

    executor_cls._build_request_context = build_request_context

    # ---- Fix 3 (a): a numeric code in every error document mongoeco builds ------------------
    # The driver needs {ok: 0, code: <int32>, codeName, errmsg}. mongoeco's
    # build_error_document() only copies exc.code when the exception has one.
    # Fix: wrap WireCommandExecutor.error_document() (used by the proxy for every failed command)
    # and supply a code (and codeName) chosen from the exception when it has none.
    original_error_document = executor_cls.error_document

    def error_document(exc):
        document = original_error_document(exc)
        code = document.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            if "unsupported wire command" in str(exc):
                code, name = _COMMAND_NOT_FOUND
            elif isinstance(exc, TypeError):
                code, name = _TYPE_MISMATCH
            elif isinstance(exc, ValueError):
                code, name = _BAD_VALUE
            else:
                code, name = _UNKNOWN_ERROR
            document["code"] = code
            if not isinstance(document.get("codeName"), str):
                document["codeName"] = name
        return document

    executor_cls.error_document = staticmethod(error_document)

    # ---- Fix 1 and fix 3 (b): the reply encoder -----------------------------------------------
    # Fix 1: mongoeco replies {cursor: {id: 3, ns, firstBatch|nextBatch}} with a Python int, which
    # pymongo's bson writes as int32 when it fits; the driver requires int64. The proxy module
    # imported encode_op_msg_response/encode_op_reply by name, so those names in mongoeco.wire.proxy
    # are replaced with wrappers that write cursor.id as bson Int64 (a copy: mongoeco's own dicts
    # are not changed). Int64 is an int subclass, so mongoeco's encode_wire_value passes it through.
    # Fix 3 (b): replies built outside error_document() (protocol errors during decoding) may
    # still carry ok: 0 with no code or code: null; they get 8 UnknownError.
    def wire_ready(document):
        if not isinstance(document, dict):
            return document
        cursor = document.get("cursor")
        if isinstance(cursor, dict) and "id" in cursor:
            cursor_id = cursor["id"]
            if isinstance(cursor_id, BsonInt64):
                cursor_id = cursor_id.value
            if isinstance(cursor_id, int) and not isinstance(cursor_id, bool):
                document = {**document, "cursor": {**cursor, "id": Int64(cursor_id)}}
        if document.get("ok") in (0, 0.0, False):
            code = document.get("code")
            if not isinstance(code, int) or isinstance(code, bool):
                document = {**document, "code": _UNKNOWN_ERROR[0]}
                if not isinstance(document.get("codeName"), str):
                    document["codeName"] = _UNKNOWN_ERROR[1]
        return document

    original_encode_msg = wire_proxy.encode_op_msg_response
    original_encode_reply = wire_proxy.encode_op_reply

    def encode_op_msg_response(document, *args, **kwargs):
        return original_encode_msg(wire_ready(document), *args, **kwargs)

    def encode_op_reply(documents, *args, **kwargs):
        return original_encode_reply([wire_ready(d) for d in documents], *args, **kwargs)

    wire_proxy.encode_op_msg_response = encode_op_msg_response
    wire_proxy.encode_op_reply = encode_op_reply

    executor_cls._emporium_patched = True


def apply_engine_fixes() -> None:
    """Fixes 4-6 of the module docstring: mongoeco 4.11.0 bugs seen by every client (idempotent)."""
    import decimal

    from bson.decimal128 import Decimal128 as PublicDecimal128
    from bson.int64 import Int64 as PublicInt64

    from mongoeco.core import bson_scalars, projections
    from mongoeco.core.aggregation import runtime as aggregation_runtime
    from mongoeco.core.runtime_metadata import RuntimeDocumentState
    from mongoeco.types import Decimal128

    if getattr(aggregation_runtime, "_emporium_patched", False):
        return
    for owner, name in (
        (aggregation_runtime, "_bson_value_size"),
        (bson_scalars, "_wrap_numeric_result"),
        (projections, "_apply_inclusion_tree"),
    ):
        if not hasattr(owner, name):
            _fail(f"mongoeco internals changed: {owner.__name__}.{name} is missing")

    # ---- Fix 4: BSON sizes of Decimal128 / Int64 / Int32 / Double values --------------------
    # _bson_document_size() (listDatabases, dbStats, collStats, $bsonSize) looks the module-level
    # name _bson_value_size up at call time, so replacing it in the module is enough.
    # The stats commands see documents in pymongo's bson types (bson.Decimal128, bson.Int64 - an int
    # subclass the original would size as 4 bytes when small), the engine's own wrappers elsewhere.
    sized_types = (
        (PublicDecimal128, 16),
        (bson_scalars.BsonDecimal128, 16),
        (Decimal128, 16),
        (decimal.Decimal, 16),
        (PublicInt64, 8),
        (bson_scalars.BsonInt64, 8),
        (bson_scalars.BsonInt32, 4),
        (bson_scalars.BsonDouble, 8),
    )
    original_value_size = aggregation_runtime._bson_value_size

    def bson_value_size(value):
        for kind, size in sized_types:
            if isinstance(value, kind):
                return size
        return original_value_size(value)

    aggregation_runtime._bson_value_size = bson_value_size

    # ---- Fix 5: Int64 + Int64 stays Int64 in $inc (and the other bson_* arithmetic helpers) ----
    # bson_add()/bson_subtract()/bson_multiply() call the module-level _wrap_numeric_result().
    original_wrap = bson_scalars._wrap_numeric_result
    int64_type, int32_type = bson_scalars.BsonInt64, bson_scalars.BsonInt32

    def wrap_numeric_result(left, right, result):
        wrapped = original_wrap(left, right, result)
        if isinstance(wrapped, int32_type) and (isinstance(left, int64_type) or isinstance(right, int64_type)):
            return int64_type(wrapped.value)
        return wrapped

    bson_scalars._wrap_numeric_result = wrap_numeric_result

    # ---- Fix 6: inclusion projections of $text results ---------------------------------------
    # _apply_inclusion_projection() calls the module-level _apply_inclusion_tree(doc, root); the
    # $meta part of the projection still reads the score from the RuntimeDocumentState itself.
    original_inclusion_tree = projections._apply_inclusion_tree

    def apply_inclusion_tree(source, root):
        if isinstance(source, RuntimeDocumentState):
            source = source.document
        return original_inclusion_tree(source, root)

    projections._apply_inclusion_tree = apply_inclusion_tree

    aggregation_runtime._emporium_patched = True


# --------------------------------------------------------------------------------------------
# Running the server
# --------------------------------------------------------------------------------------------


def _loopback_host(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    _fail(f"--host {host!r} is not a loopback address; this test server listens on loopback only")
    raise AssertionError  # unreachable


def _write_port_file(path: str, port: int) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".port.", dir=directory)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{port}\n")
    os.replace(tmp, path)  # readers see either no file or the whole port


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _serve(args: argparse.Namespace) -> int:
    from mongoeco.engines.memory import MemoryEngine
    from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    server = AsyncMongoEcoProxyServer(engine=MemoryEngine(), host=args.host, port=args.port)
    address = await server.start()
    try:
        if args.port_file:
            _write_port_file(args.port_file, address.port)
        print(f"{READY_PREFIX} {address.host}:{address.port}", flush=True)

        async def watch_parent() -> None:
            while _pid_alive(args.watch_pid):
                await asyncio.sleep(1.0)
            print(f"ops/mongodb/server.py: process {args.watch_pid} is gone; stopping", file=sys.stderr, flush=True)
            stop.set()

        watcher = asyncio.create_task(watch_parent()) if args.watch_pid else None
        await stop.wait()
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    finally:
        await server.close()
        if args.port_file:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(args.port_file)
    return 0


def _exit_before_serving(signum, _frame) -> None:
    # SIGTERM/SIGINT while still importing or starting: nothing is open yet, so just leave.
    # (A shell starts background jobs with SIGINT ignored; this makes SIGINT work there too.)
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_before_serving)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 (default) picks a free one")
    parser.add_argument("--port-file", help="write the bound port here once listening (removed on exit)")
    parser.add_argument("--watch-pid", type=int, default=0, help="exit when this process is gone")
    parser.add_argument("--no-fixes", action="store_true", help="run mongoeco unpatched (to reproduce the incompatibilities)")
    parser.add_argument("--driver-fixes-only", action="store_true", help="apply fixes 1-3 (Rust driver) but not 4-6 (mongoeco bugs)")
    args = parser.parse_args(argv)
    args.host = _loopback_host(args.host)
    if not 0 <= args.port <= 65535:
        _fail(f"--port {args.port} is out of range")

    if sys.version_info < (3, 13):
        _fail(f"Python >= 3.13 is needed (this is {sys.version.split()[0]}); use the venv from ops/mongodb/install.sh")
    try:
        version = importlib.metadata.version("mongoeco")
    except importlib.metadata.PackageNotFoundError:
        _fail("mongoeco is not installed in this Python; run ops/mongodb/install.sh and use its venv")
    if version != PINNED_MONGOECO:
        _fail(f"mongoeco {version} found, {PINNED_MONGOECO} required (the fixes patch its internals)")

    if not args.no_fixes:
        apply_rust_driver_fixes()
        if not args.driver_fixes_only:
            apply_engine_fixes()
    return asyncio.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
