"""The provider registry is the one place a provider is declared: the config, the environment
overrides, the credentials check, ``config.example.toml`` and the README all agree with it."""

from __future__ import annotations

import re
import tomllib
import typing
from pathlib import Path

import pytest
from pydantic import SecretStr

from digest.config import ENV_OVERRIDES, Config, ConfigError, DeliveryConfig, config_from_dict
from digest.transports.registry import PROVIDERS, Provider, TransportNeeds

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
# Environment variables that are not a provider's key.
GENERAL_ENV = {"DIGEST_DATABASE_URL": ("database", "url"),
               "DIGEST_SECRET_KEY": ("web", "secret_key"),
               "DIGEST_DKIM_PRIVATE_KEY": ("dkim", "private_key"),
               "DIGEST_EDITOR_PASSWORD": ("web", "editor_password")}
WITH_SETTINGS = [p for p in PROVIDERS.values() if p.settings is not None]
WITH_CREDENTIALS = [p for p in PROVIDERS.values() if p.credentials]


def load(raw: dict, environ: dict[str, str] | None = None) -> Config:
    return config_from_dict(raw, base_dir=Path("."), environ=environ or {})


def filled(provider: Provider, **values: str) -> dict:
    """The provider's section with every credential set (``values`` over those)."""
    return {key: f"{provider.name}-{key}-value" for key in provider.credentials} | values


# -- config ------------------------------------------------------------------------------------


def test_the_transports_one_may_choose_are_the_registry_s():
    choices = typing.get_args(DeliveryConfig.model_fields["transport"].annotation)
    assert choices == tuple(PROVIDERS)
    with pytest.raises(ConfigError, match="'postmark'"):
        load({"delivery": {"transport": "pigeon"}})


def test_each_provider_with_settings_has_its_section_and_nothing_else_is_one():
    sections = {name: field.annotation for name, field in Config.model_fields.items()}
    for provider in WITH_SETTINGS:
        assert sections[provider.name] is provider.settings
    for provider in PROVIDERS.values():
        if provider.settings is None:
            assert provider.name not in sections


def test_the_environment_overrides_are_the_registry_s_and_reach_their_key():
    from_registry = {var: (p.name, key) for p in PROVIDERS.values() for var, key in p.env.items()}
    assert ENV_OVERRIDES == GENERAL_ENV | from_registry
    for var, (section, key) in from_registry.items():
        assert key in PROVIDERS[section].settings.model_fields, var
        value = getattr(getattr(load({}, {var: "from-the-environment"}), section), key)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        assert value == "from-the-environment", var


@pytest.mark.parametrize("provider", WITH_CREDENTIALS, ids=lambda p: p.name)
def test_each_required_credential_is_checked_and_named_with_its_variable(provider):
    load({"delivery": {"transport": provider.name}, provider.name: filled(provider)})
    for key in provider.credentials:
        with pytest.raises(ConfigError) as raised:
            load({"delivery": {"transport": provider.name},
                  provider.name: filled(provider, **{key: ""})})
        assert f"needs [{provider.name}] {key}" in raised.value.message
        variable = next((var for var, k in provider.env.items() if k == key), None)
        if variable:
            assert variable in raised.value.message


def test_credentials_are_checked_only_for_the_chosen_transport():
    load({"delivery": {"transport": "file"}})


# -- factories ---------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", list(PROVIDERS.values()), ids=lambda p: p.name)
def test_each_declared_factory_exists_and_builds(provider, tmp_path):
    import httpx

    from digest.render import make_environment

    settings = provider.settings(**filled(provider)) if provider.settings else None
    with httpx.Client() as client:
        needs = TransportNeeds(http_client=lambda: client, outbox=tmp_path,
                               templates=make_environment())
        transport = provider.make_transport(settings, needs)
    assert transport.name == provider.name and transport.max_batch > 0
    # No webhook secret is configured: no webhook (and no import error for any provider).
    assert provider.make_webhook(settings) is None


def test_a_provider_without_a_webhook_module_has_no_webhook():
    bare = Provider("pigeon", "digest.transports.null:from_settings")
    assert bare.make_webhook(None) is None


# -- documentation -----------------------------------------------------------------------------


def test_config_example_has_each_provider_section_with_exactly_its_keys():
    for provider in WITH_SETTINGS:
        assert set(EXAMPLE[provider.name]) == set(provider.settings.model_fields), provider.name
    documented = re.search(r"^\[delivery\]\n# (.+)$", (ROOT / "config.example.toml").read_text(),
                           re.MULTILINE)
    assert documented is not None
    assert set(re.findall(r"\b[a-z]+\b", documented.group(1).split("(")[0])) == set(PROVIDERS)


def readme_table(first_header: str) -> list[list[str]]:
    """The rows of the README table whose first column is headed ``first_header``."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_readme_documents_every_environment_override_and_no_other():
    documented: dict[str, tuple[str, str]] = {}
    for variables, targets in readme_table("variable"):
        names = re.findall(r"`(DIGEST_[A-Z_]+)`", variables)
        keys = re.findall(r"`([^`]+)`", targets.split(" (")[0])     # not the remarks
        if names == ["DIGEST_CONFIG"]:
            continue
        section = re.match(r"\[(\w+)\]", keys[0]).group(1)
        keys = [key.removeprefix(f"[{section}]").strip() for key in keys]
        assert len(names) == len(keys), variables
        documented.update({name: (section, key) for name, key in zip(names, keys)})
    assert documented == ENV_OVERRIDES


def test_readme_documents_each_provider_section_with_exactly_its_keys():
    sections = {re.sub(r"[`\[\]]", "", name): row for name, row in readme_table("section")}
    for provider in WITH_SETTINGS:
        keys = re.findall(r"`(\w+)` *(?:\(|,|$)", sections[provider.name])
        assert set(keys) == set(provider.settings.model_fields), provider.name
    transports = re.search(r"`transport` \(([^)]*)\)", sections["delivery"]).group(1)
    assert set(re.findall(r"`(\w+)`", transports)) == set(PROVIDERS)
