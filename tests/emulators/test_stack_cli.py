"""`python -m emulators up/status/fault/calls/down`: the one command that starts the whole local stack."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emulators.control import StandInControl

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def cli(folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "emulators", "--folder", str(folder), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=90)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}: {proc.stdout}\n{proc.stderr}")
    return proc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def test_up_writes_settings_answers_injects_faults_and_down_stops_it(tmp_path):
    folder, settings_file = tmp_path / "stack", tmp_path / "local.settings.json"
    out = cli(folder, "up", "--settings", str(settings_file), "--persist").stdout
    info = json.loads((folder / "stack.json").read_text())
    try:
        assert "local stack up" in out and _alive(info["pid"])
        values = json.loads(settings_file.read_text())["Values"]
        # Everything the app needs to reach the stack, with the CA that makes its TLS trusted.
        assert values["LOCAL_STACK_CA_BUNDLE"] == info["ca_cert"] and Path(info["ca_cert"]).exists()
        assert values["KEYVAULT_URL"].startswith("https://127.0.0.1:")
        assert values["ServiceBusConnection"].endswith("UseDevelopmentEmulator=true")
        assert "AccountKey=" in values["AzureWebJobsStorage"]
        # The app's settings, and for the shell only the tenant-admin client (python -m opstool tenant).
        env = (folder / "env").read_text()
        assert env.count("export ") == len(values) + 2 and "export AUTH0_ADMIN_CLIENT_ID=" in env
        assert "AUTH0_ADMIN_CLIENT_ID" not in values
        assert info["api"]["url"].startswith(info["services"]["gateway"]["url"]) and "api " in out
        for name, svc in info["services"].items():
            assert StandInControl(svc["url"], verify=info["ca_cert"]).health()["status"] == "ok"

        cli(folder, "fault", "auth0", "clients.create", "503", "--count", "2")
        faults = StandInControl(info["services"]["auth0"]["url"], verify=info["ca_cert"])._call("GET", "faults")
        assert faults["scripts"] == [{"op": "clients.create", "fail_with": 503, "remaining": 2}]
        assert "calls" in cli(folder, "calls", "auth0").stdout
        assert cli(folder, "status").returncode == 0
        # `up` again does not start a second stack.
        assert "already running" in cli(folder, "up", "--settings", str(settings_file)).stdout
    finally:
        down = cli(folder, "down", check=False)
    assert down.returncode == 0 and not _alive(info["pid"]) and not (folder / "stack.json").exists()
    assert cli(folder, "status", check=False).returncode != 0


def test_persisted_state_survives_a_restart(tmp_path):
    import ssl

    import httpx

    folder, settings_file = tmp_path / "stack", tmp_path / "local.settings.json"
    cli(folder, "up", "--settings", str(settings_file), "--persist", "--no-servicebus")
    values = json.loads(settings_file.read_text())["Values"]
    base = f"https://{values['AUTH0_DOMAIN']}"
    http = httpx.Client(verify=ssl.create_default_context(cafile=values["LOCAL_STACK_CA_BUNDLE"]))
    try:
        token = http.post(f"{base}/oauth/token", json={
            "grant_type": "client_credentials", "client_id": values["AUTH0_CLIENT_ID"],
            "client_secret": values["AUTH0_CLIENT_SECRET"], "audience": f"{base}/api/v2/"}).json()["access_token"]
        created = http.post(f"{base}/api/v2/clients", json={"name": "kept across restarts"},
                            headers={"Authorization": f"Bearer {token}"})
        assert created.status_code == 201
    finally:
        cli(folder, "down")
    assert (folder / "state" / "auth0.json").exists()
    cli(folder, "up", "--settings", str(settings_file), "--persist", "--no-servicebus")
    values = json.loads(settings_file.read_text())["Values"]
    try:
        info = json.loads((folder / "stack.json").read_text())
        clients = StandInControl(info["services"]["auth0"]["url"], verify=info["ca_cert"]).state()["clients"]
        assert created.json()["client_id"] in [c["client_id"] for c in clients]
    finally:
        http.close()
        cli(folder, "down")
