"""Load the app module and describe its Service Bus and timer triggers.

Mirrors the Python worker's indexing: the script root goes on ``sys.path``, the script (``function_app.py`` or
``PYTHON_SCRIPT_FILE_NAME``) is imported under its own module name, and the one ``FunctionApp`` instance in it is
asked for its functions. ``FunctionApp.get_functions()`` raises on a second call for the same instance (duplicate
name check), so an app is indexed once per process and the result is cached by script path.
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from azure.functions.decorators.function_app import FunctionRegister

log = logging.getLogger("funchost.discovery")

DEFAULT_SCRIPT_FILE = "function_app.py"
SERVICE_BUS_TRIGGER = "serviceBusTrigger"
TIMER_TRIGGER = "timerTrigger"


@dataclass(frozen=True)
class IndexedApp:
    script_path: Path
    module: Any
    app: FunctionRegister
    functions: tuple  # azure.functions.decorators.core.Function


_cache: dict[Path, IndexedApp] = {}
_cache_lock = threading.Lock()


def index_app(app_root: str | Path, script_file: str = DEFAULT_SCRIPT_FILE) -> IndexedApp:
    """Import the app (once per process per script path) and list its functions."""
    app_root = Path(app_root).resolve()
    script_path = (app_root / script_file).resolve()
    with _cache_lock:
        cached = _cache.get(script_path)
        # Still the module in sys.modules: a caller that dropped it (to re-read settings that bindings take at
        # import, such as isSessionsEnabled) gets the app indexed again, as a restarted worker would.
        if cached is not None and sys.modules.get(script_path.stem) is cached.module:
            return cached
        if not script_path.is_file():
            raise FileNotFoundError(f"script file not found: {script_path}")
        if str(app_root) not in sys.path:
            sys.path.insert(0, str(app_root))
        module = _import_script(script_path)
        app = _find_function_app(module, script_path)
        indexed = IndexedApp(script_path, module, app, tuple(app.get_functions()))
        _cache[script_path] = indexed
        return indexed


def _import_script(script_path: Path):
    name = script_path.stem
    existing = sys.modules.get(name)
    if existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() == script_path:
        return existing
    # Another app with the same script name was loaded in this process (tests): load this one in its place.
    spec = importlib.util.spec_from_file_location(name, script_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _find_function_app(module, script_path: Path) -> FunctionRegister:
    # The worker accepts exactly one FunctionApp-like instance at module level, whatever its name.
    apps = [v for v in vars(module).values() if isinstance(v, FunctionRegister)]
    if not apps:
        raise ValueError(f"{script_path.name}: no FunctionApp instance at module level")
    if len(apps) > 1:
        raise ValueError(f"{script_path.name}: multiple FunctionApp instances at module level")
    return apps[0]


@dataclass(frozen=True)
class FunctionTrigger:
    """One function as the host sees it: its name, trigger binding (function.json form) and callable."""
    name: str
    trigger: dict[str, Any]
    bindings: tuple[dict[str, Any], ...]
    user_function: Callable[..., Any]

    @property
    def trigger_type(self) -> str:
        return self.trigger["type"]

    @property
    def param_name(self) -> str:
        return self.trigger["name"]

    def prop(self, key: str, default: Any = None) -> Any:
        """A binding property, matched case-insensitively (function.json is read that way)."""
        lowered = key.lower()
        for k, v in self.trigger.items():
            if k.lower() == lowered:
                return v
        return default

    @property
    def unsupported_bindings(self) -> list[dict[str, Any]]:
        return [b for b in self.bindings if b is not self.trigger]

    @property
    def wants_context(self) -> bool:
        return "context" in inspect.signature(self.user_function).parameters

    @property
    def trigger_annotation(self) -> Any:
        param = inspect.signature(self.user_function).parameters.get(self.param_name)
        return None if param is None else param.annotation


def describe_functions(indexed: IndexedApp) -> list[FunctionTrigger]:
    result = []
    for fn in indexed.functions:
        definition = json.loads(fn.get_function_json())
        bindings = tuple(definition.get("bindings", []))
        trigger = next(b for b in bindings if str(b.get("type", "")).lower().endswith("trigger"))
        result.append(FunctionTrigger(name=fn.get_function_name(), trigger=trigger, bindings=bindings,
                                      user_function=fn.get_user_function()))
    return result


def is_cardinality_many(trigger: FunctionTrigger) -> bool:
    return str(trigger.prop("cardinality", "one")).lower() == "many"


def is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn)


__all__ = ["index_app", "describe_functions", "FunctionTrigger", "IndexedApp", "SERVICE_BUS_TRIGGER",
           "TIMER_TRIGGER"]
