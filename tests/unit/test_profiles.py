"""Client profiles: the checked-in file loads, and every mistake fails naming the profile and the key."""
from __future__ import annotations

from pathlib import Path

import pytest

from shared.domain.profiles import ProfileConfigError, load_profiles, parse_profiles

ROOT = Path(__file__).resolve().parents[2]
ENV = {"API_AUDIENCE": "https://api.contoso.example/"}

GOOD = {
    "description": '"test"',
    "app_type": '"non_interactive"',
    "grant_types": '["client_credentials"]',
    "token_endpoint_auth_method": '"client_secret_post"',
    "first_party": "false",
    "token_lifetime": "3600",
    "audience": '"${API_AUDIENCE}"',
    "scopes": '["read:data"]',
    "apim_product": '"oem"',
    "apim_authorization_server": '"per-customer"',
    "redirect_uris": '"none"',
}


def toml(name: str = "p", **changes) -> str:
    keys = {**GOOD, **changes}
    body = "\n".join(f"{k} = {v}" for k, v in keys.items() if v is not None)
    return f"[profiles.{name}]\n{body}\n"


def refused(text: str, env=ENV) -> str:
    with pytest.raises(ProfileConfigError) as err:
        parse_profiles(text, env)
    return str(err.value)


def test_the_checked_in_profiles_load():
    profiles = load_profiles(ROOT / "config" / "client_profiles.toml", ENV)
    assert set(profiles) >= {"oem", "partner-web", "partner-spa"}
    oem, web, spa = profiles["oem"], profiles["partner-web"], profiles["partner-spa"]
    assert oem.audience == ENV["API_AUDIENCE"] and oem.first_party is False
    assert oem.confidential and oem.apim_grant_types == ("clientCredentials",) and oem.wants_authorization_server
    assert web.confidential and web.apim_grant_types == ("authorizationCode",) and web.redirect_uris == "optional"
    assert not spa.confidential and spa.token_endpoint_auth_method == "none" and spa.app_type == "spa"
    for p in profiles.values():  # every shipped profile is for a third party
        assert p.first_party is False


def test_defaults_for_optional_keys():
    [profile] = parse_profiles(toml(description=None, token_lifetime=None, apim_authorization_server=None,
                                    redirect_uris=None), ENV).values()
    assert (profile.description, profile.token_lifetime, profile.apim_authorization_server,
            profile.redirect_uris) == ("", 3600, "per-customer", "none")


def test_apim_none_mode():
    [profile] = parse_profiles(toml(apim_authorization_server='"none"'), ENV).values()
    assert profile.wants_authorization_server is False


@pytest.mark.parametrize("changes,words", [
    ({"app_type": '"desktop"'}, "app_type must be one of"),
    ({"grant_types": "[]"}, "grant_types must be a non-empty list"),
    ({"grant_types": '"client_credentials"'}, "grant_types must be a non-empty list"),
    ({"grant_types": '["magic"]'}, "grant_types must be a non-empty list"),
    ({"grant_types": "[{a = 1}]"}, "grant_types must be a non-empty list"),
    ({"token_endpoint_auth_method": '"private_key_jwt"'}, "token_endpoint_auth_method must be one of"),
    ({"first_party": '"no"'}, "first_party must be true or false"),
    ({"grant_types": '["password"]'}, "a third-party application may only use"),
    ({"token_endpoint_auth_method": '"none"'}, "client_credentials needs a confidential client"),
    ({"app_type": '"spa"', "grant_types": '["authorization_code"]'}, "a spa is a public client"),
    ({"token_lifetime": "59"}, "token_lifetime must be 60-2592000"),
    ({"token_lifetime": "2592001"}, "token_lifetime must be 60-2592000"),
    ({"token_lifetime": '"3600"'}, "token_lifetime must be 60-2592000"),
    ({"audience": '"api.contoso.example"'}, "audience must be the API identifier URL"),
    ({"scopes": '"read:data"'}, "scopes must be a list"),
    ({"scopes": '["read data"]'}, "scopes must be a list"),
    ({"scopes": '[""]'}, "scopes must be a list"),
    ({"apim_product": '"a/b"'}, "apim_product must be an APIM product id"),
    ({"apim_product": '""'}, "apim_product must be an APIM product id"),
    ({"apim_authorization_server": '"shared"'}, "apim_authorization_server must be one of"),
    ({"redirect_uris": '"always"'}, "redirect_uris must be one of"),
    ({"redirect_uris": '"optional"'}, "redirect_uris needs the authorization_code grant"),
    ({"colour": '"blue"'}, "unknown keys ['colour']"),
    ({"audience": None}, "missing keys ['audience']"),
])
def test_each_mistake_names_the_profile_and_the_rule(changes, words):
    message = refused(toml("broken", **changes))
    assert message.startswith("profile 'broken': ")
    assert words in message


@pytest.mark.parametrize("name", ["Upper", "-dash", "x" * 41])
def test_profile_names(name):
    assert "names are 1-40 lower-case letters, digits and -" in refused(toml(f'"{name}"'))


def test_unset_setting_is_named():
    message = refused(toml("p"), env={})
    assert "profile 'p'.audience" in message and "API_AUDIENCE is not set" in message
    assert "API_AUDIENCE is not set" in refused(toml("p"), env={"API_AUDIENCE": ""})


def test_settings_expand_inside_lists():
    text = toml(scopes='["${SCOPE}", "b"]')
    [profile] = parse_profiles(text, {**ENV, "SCOPE": "read:all"}).values()
    assert profile.scopes == ("read:all", "b")


@pytest.mark.parametrize("text,words", [
    ("[profiles.p\n", "not valid TOML"),
    ("title = 'x'\n", "at least one [profiles.<name>] table"),
    ("[profiles]\n", "at least one [profiles.<name>] table"),
    (toml() + "[other]\nx = 1\n", "unknown top-level keys ['other']"),
    ("profiles = 'x'\n", "at least one [profiles.<name>] table"),
    ("[profiles]\np = 'x'\n", "profile 'p': must be a table"),
])
def test_file_level_mistakes(text, words):
    assert words in refused(text)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ProfileConfigError, match="cannot read client profiles file"):
        load_profiles(tmp_path / "nope.toml", ENV)


def test_the_settings_given_fill_in_the_variables(tmp_path):
    path = tmp_path / "profiles.toml"
    path.write_text(toml("p"), encoding="utf-8")
    assert load_profiles(path, {"API_AUDIENCE": "https://env.example/"})["p"].audience == "https://env.example/"


def test_allow_local_redirect_uris_is_a_boolean_that_defaults_to_off():
    web = dict(grant_types='["authorization_code"]', app_type='"regular_web"', redirect_uris='"optional"')
    assert parse_profiles(toml(**web), ENV)["p"].allow_local_redirect_uris is False
    assert parse_profiles(toml(**web, allow_local_redirect_uris="true"), ENV)["p"].allow_local_redirect_uris
    assert "allow_local_redirect_uris must be true or false" in refused(toml(**web, allow_local_redirect_uris='"yes"'))


def test_every_problem_of_every_profile_is_reported_at_once():
    """A typo in two profiles (and a second mistake in one of them) is one error naming all three, so one start-up
    tells everything to fix, as the settings do."""
    text = toml("a", apim_product=None, apim_prodcut='"oem"') + toml("b", apim_product=None, apim_prodcut='"oem"',
                                                                     token_lifetime="5")
    with pytest.raises(ProfileConfigError) as err:
        parse_profiles(text, ENV)
    problems = err.value.problems
    assert any("profile 'a'" in p and "unknown keys ['apim_prodcut']" in p for p in problems), problems
    assert any("profile 'b'" in p and "missing keys ['apim_product']" in p for p in problems), problems
    text = toml("a", token_lifetime="5", scopes='"read:data"') + toml("b", app_type='"robot"')
    problems = refused_all(text)
    assert [p.split(":")[0] for p in problems] == ["profile 'a'", "profile 'a'", "profile 'b'"], problems
    assert "token_lifetime" in problems[0] and "scopes" in problems[1] and "app_type" in problems[2]


def refused_all(text: str, env=ENV) -> list[str]:
    with pytest.raises(ProfileConfigError) as err:
        parse_profiles(text, env)
    assert str(err.value) == "; ".join(err.value.problems)
    return err.value.problems


def test_the_start_up_check_lists_each_profile_problem_as_its_own_line(tmp_path):
    from shared.bootstrap import load_app_settings
    from shared.settings import SettingsError, read_local_settings

    path = tmp_path / "profiles.toml"
    path.write_text(toml("a", apim_product=None, apim_prodcut='"oem"') + toml("b", app_type='"robot"'))
    values = read_local_settings(ROOT / "local.settings.sample.json")
    with pytest.raises(SettingsError) as err:
        load_app_settings({**values, "CLIENT_PROFILES_PATH": str(path), "API_AUDIENCE": ENV["API_AUDIENCE"]})
    assert err.value.problems == [
        "CLIENT_PROFILES_PATH: profile 'a': unknown keys ['apim_prodcut']",
        "CLIENT_PROFILES_PATH: profile 'a': missing keys ['apim_product']",
        "CLIENT_PROFILES_PATH: profile 'b': app_type must be one of ['native', 'non_interactive', 'regular_web', 'spa']"]
