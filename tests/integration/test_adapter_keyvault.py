"""KeyVaultSecretStore against the Key Vault stand-in, through the real SecretClient (challenge auth, TLS) and the
real DefaultAzureCredential (managed-identity stand-in)."""
from __future__ import annotations

import re
import time
import uuid

import pytest

from shared.adapters.credentials import get_credential
from shared.adapters.keyvault_secrets import KeyVaultSecretStore
from shared.domain.errors import PermanentError, TransientError
from shared.service_layer.ports import SecretDeletedButRecoverable

pytestmark = pytest.mark.timeout(60)

HEX32 = re.compile(r"^[0-9a-f]{32}$")
TAGS = {"customer": "c1", "client": "tpc_x", "profile": "oem"}


@pytest.fixture
def store(settings):
    adapter = KeyVaultSecretStore.from_settings(settings, get_credential())
    yield adapter
    adapter.close()


def new_name() -> str:
    return "auth0-client-" + uuid.uuid4().hex[:12]


def new_value() -> str:
    return "s3cr3t-" + uuid.uuid4().hex


def calls(ctl, op: str) -> int:
    return ctl.calls()["calls"].get(op, 0)


def test_set_returns_the_version_and_get_secret_version_finds_the_newest(store, stack):
    name = new_name()
    first = store.set_secret(name, new_value(), content_type="application/vnd.auth0.client-secret", tags=TAGS)
    assert HEX32.match(first)
    assert store.get_secret_version(name) == first
    second = store.set_secret(name, new_value(), content_type="text/plain", tags=TAGS)
    assert second != first
    assert store.get_secret_version(name) == second  # both were created within the same second
    stored = stack.keyvault._secrets[name.lower()]["versions"][-1]
    assert stored["tags"] == TAGS and stored["contentType"] == "text/plain"


def test_get_secret_version_never_reads_the_value(store, keyvault_ctl):
    name = new_name()
    store.set_secret(name, new_value(), content_type="text/plain", tags={})
    keyvault_ctl.clear_calls()
    store.get_secret_version(name)
    assert "secrets.get" not in keyvault_ctl.calls()["calls"]


def test_get_secret_version_of_a_missing_secret_is_none(store):
    assert store.get_secret_version(new_name()) is None


def test_delete_is_soft_and_quick(store, keyvault_ctl):
    name = new_name()
    store.set_secret(name, new_value(), content_type="text/plain", tags={})
    # The first poll does not see the deleted secret yet (as in Key Vault, where deletion takes a moment): the
    # poller sleeps before the next poll, 2 s by default.
    keyvault_ctl.fail_next("deleted_secrets.get", 404)
    started = time.monotonic()
    assert store.delete_secret(name, wait=True) is True
    assert time.monotonic() - started < 1.5  # not the SDK's default 2 s between polls
    assert store.get_secret_version(name) is None
    assert store.delete_secret(name) is False


def test_a_delete_not_waited_for_sends_only_the_delete_and_leaves_key_vault_finishing(store, keyvault_ctl):
    name = new_name()
    store.set_secret(name, new_value(), content_type="text/plain", tags={})
    polls = calls(keyvault_ctl, "deleted_secrets.get")
    keyvault_ctl.config(deletion_seconds=60)
    try:
        assert store.delete_secret(name) is True
        assert calls(keyvault_ctl, "deleted_secrets.get") == polls  # no poll
        # While Key Vault is still deleting, the name can be neither set nor recovered: 409, transient.
        with pytest.raises(TransientError) as info:
            store.set_secret(name, new_value(), content_type="text/plain", tags={})
        assert info.value.status == 409 and "being deleted" in info.value.message
        with pytest.raises(TransientError):
            store.recover_deleted_secret(name)
    finally:
        keyvault_ctl.config(deletion_seconds=0)  # finishes the delete under way
    with pytest.raises(SecretDeletedButRecoverable):
        store.set_secret(name, new_value(), content_type="text/plain", tags={})
    assert store.recover_deleted_secret(name) is True


def test_a_delete_waited_for_returns_once_the_secret_can_be_purged(store, keyvault_ctl):
    name = new_name()
    store.set_secret(name, new_value(), content_type="text/plain", tags={})
    keyvault_ctl.config(deletion_seconds=0.6)
    try:
        assert store.delete_secret(name, wait=True) is True
        assert store.purge_deleted_secret(name) is True  # refused with 409 while the delete was under way
    finally:
        keyvault_ctl.config(deletion_seconds=0)
    assert HEX32.match(store.set_secret(name, new_value(), content_type="text/plain", tags={}))


def test_setting_a_deleted_name_raises_deleted_but_recoverable(store):
    name = new_name()
    store.set_secret(name, new_value(), content_type="text/plain", tags={})
    store.delete_secret(name)
    with pytest.raises(SecretDeletedButRecoverable):
        store.set_secret(name, new_value(), content_type="text/plain", tags={})


def test_recover_brings_back_the_last_version(store):
    name = new_name()
    version = store.set_secret(name, new_value(), content_type="text/plain", tags={})
    store.delete_secret(name)
    assert store.recover_deleted_secret(name) is True
    assert store.get_secret_version(name) == version
    assert store.recover_deleted_secret(name) is False  # nothing deleted any more
    assert HEX32.match(store.set_secret(name, new_value(), content_type="text/plain", tags={}))


def test_purge_frees_the_name(store):
    name = new_name()
    store.set_secret(name, new_value(), content_type="text/plain", tags={})
    store.delete_secret(name)
    assert store.purge_deleted_secret(name) is True
    assert store.purge_deleted_secret(name) is False
    assert store.recover_deleted_secret(name) is False
    assert HEX32.match(store.set_secret(name, new_value(), content_type="text/plain", tags={}))


def test_purge_refused_by_purge_protection_is_permanent(store, keyvault_ctl):
    name = new_name()
    store.set_secret(name, new_value(), content_type="text/plain", tags={})
    store.delete_secret(name)
    keyvault_ctl.config(purge_protection=True)
    try:
        with pytest.raises(PermanentError) as info:
            store.purge_deleted_secret(name)
    finally:
        keyvault_ctl.config(purge_protection=False)
    assert info.value.status == 403 and "purge protection" in info.value.message


def test_server_errors_are_retried_twice_in_call_then_transient(store, keyvault_ctl):
    name = new_name()
    store.get_secret_version(name)  # warm up: token and challenge done
    keyvault_ctl.fail_next("secrets.set", 503, count=5)
    before = calls(keyvault_ctl, "secrets.set")
    with pytest.raises(TransientError) as info:
        store.set_secret(name, new_value(), content_type="text/plain", tags={})
    assert info.value.status == 503 and info.value.service == "keyvault"
    assert calls(keyvault_ctl, "secrets.set") - before == 3  # the first try and two retries, no more


def test_a_blip_is_absorbed_by_the_in_call_retry(store, keyvault_ctl):
    name = new_name()
    keyvault_ctl.fail_next("secrets.set", 500)
    assert HEX32.match(store.set_secret(name, new_value(), content_type="text/plain", tags={}))


def test_a_refused_value_is_permanent_and_the_value_stays_out_of_the_error(store):
    value = new_value()
    too_many_tags = {f"t{i}": value for i in range(16)}
    with pytest.raises(PermanentError) as info:
        store.set_secret(new_name(), value, content_type="text/plain", tags=too_many_tags)
    assert info.value.status == 400
    assert value not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_an_unreachable_vault_is_transient(settings):
    store = KeyVaultSecretStore("https://127.0.0.1:9/", get_credential(), ca_bundle=settings.local_stack_ca_bundle,
                                timeout=2)
    with pytest.raises(TransientError):
        store.get_secret_version("anything")


def _versions_holding(stack, name: str, value: str) -> int:
    return sum(1 for v in stack.keyvault._secrets[name.lower()]["versions"] if v["value"] == value)


def test_case07_a_write_applied_whose_answer_was_lost_makes_one_version(store, stack, keyvault_ctl):
    """Issue 23, case 7: Key Vault applied the PUT and the connection dropped before the answer. The SDK's retry
    of the PUT made a second version of the same secret, so the version before the latest (which integrations keep
    during a rotation) held the new secret, not the old one."""
    name, old, new = new_name(), new_value(), new_value()
    store.set_secret(name, old, content_type="text/plain", tags=TAGS)
    keyvault_ctl.fail_next("secrets.set", "drop_after")
    version = store.set_secret(name, new, content_type="text/plain", tags={**TAGS, "rotation_event_id": "r1"})
    versions = stack.keyvault._secrets[name.lower()]["versions"]
    assert _versions_holding(stack, name, new) == 1 and versions[-1]["value"] == new
    assert versions[-2]["value"] == old and store.get_secret_version(name) == version


def test_a_write_whose_request_never_arrived_is_sent_again(store, stack, keyvault_ctl):
    name, value = new_name(), new_value()
    keyvault_ctl.fail_next("secrets.set", "drop")  # closed before the service applied anything
    version = store.set_secret(name, value, content_type="text/plain", tags=TAGS)
    assert _versions_holding(stack, name, value) == 1 and store.get_secret_version(name) == version
