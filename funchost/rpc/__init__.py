"""The FunctionRpc message types, compiled from ``function_rpc.proto`` by grpcio-tools.

``make setup`` compiles them into ``generated/`` (``python -m funchost.rpc``); :func:`load` compiles again when the
.proto changed since, so a checkout never runs stale stubs. The compiled modules are not in the repository.
Two processes may start at once (the tests run in two workers): the compile holds a file lock and swaps the
directory in whole, so nobody imports a half-written module.
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib
import shutil
import tempfile
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
PROTO = HERE / "function_rpc.proto"
GENERATED = HERE / "generated"
_STAMP = "SOURCE_SHA256"


def _digest() -> str:
    return hashlib.sha256(PROTO.read_bytes()).hexdigest()


def _fresh() -> bool:
    stamp = GENERATED / _STAMP
    return stamp.is_file() and stamp.read_text().strip() == _digest()


def compile_protos(force: bool = False) -> Path:
    """Compile the .proto into ``generated/`` unless it is up to date; returns the directory."""
    if not force and _fresh():
        return GENERATED
    from grpc_tools import protoc
    import grpc_tools

    with open(HERE / ".compile.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and _fresh():
            return GENERATED
        staging = Path(tempfile.mkdtemp(prefix="generated-", dir=HERE))
        try:
            well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
            code = protoc.main(["grpc_tools.protoc", f"-I{HERE}", f"-I{well_known}", f"--python_out={staging}",
                                f"--grpc_python_out={staging}", PROTO.name])
            if code != 0:
                raise RuntimeError(f"protoc failed on {PROTO} (exit {code})")
            stub = staging / "function_rpc_pb2_grpc.py"
            # protoc writes a top-level import; the modules live in a package here.
            stub.write_text(stub.read_text().replace("import function_rpc_pb2 as", "from . import function_rpc_pb2 as"))
            (staging / "__init__.py").write_text('"""Compiled from ../function_rpc.proto; not in the repository."""\n')
            (staging / _STAMP).write_text(_digest() + "\n")
            old = HERE / f".old-{staging.name}"
            if GENERATED.exists():
                GENERATED.rename(old)
            staging.rename(GENERATED)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    importlib.invalidate_caches()
    return GENERATED


def load() -> tuple[ModuleType, ModuleType]:
    """``(messages, services)``: the compiled ``function_rpc_pb2`` and ``function_rpc_pb2_grpc`` modules."""
    compile_protos()
    messages = importlib.import_module(f"{__name__}.generated.function_rpc_pb2")
    services = importlib.import_module(f"{__name__}.generated.function_rpc_pb2_grpc")
    return messages, services
