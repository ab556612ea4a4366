"""``python -m funchost.rpc [--force]``: compile function_rpc.proto (``make setup`` runs it)."""
import sys

from . import GENERATED, compile_protos

if __name__ == "__main__":
    compile_protos(force="--force" in sys.argv[1:])
    print(f"FunctionRpc stubs in {GENERATED}")
