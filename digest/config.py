"""Load and validate the TOML config.

The file is the public interface documented in ``config.example.toml``. Unknown keys are errors
(with the nearest known key suggested), relative paths resolve against the config file's folder,
and secrets may come from the environment instead of the file.

The transports' sections, their environment overrides, the choice of ``[delivery] transport``
and the credentials each needs come from :mod:`digest.transports.registry`, which imports no
transport code; nothing here lists a provider by name.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (ConfigDict, Field, SecretStr, ValidationError, create_model, field_validator,
                      model_validator)

from digest.config_checks import BareAddress, DatabaseUrl, LinkUrl, MailAddress
from digest.errors import ConfigError
from digest.mailconfig import DkimConfig, ListConfig, Tier, TierConfig
from digest.transports.registry import PROVIDERS
from digest.transports.settings import OneLine, Section

DEFAULT_CONFIG_NAME = "digest.toml"

# Environment variables that override a key of the file; secrets belong here rather than in git.
# Each provider's come from its entry in the registry.
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "DIGEST_DATABASE_URL": ("database", "url"),
    "DIGEST_SECRET_KEY": ("web", "secret_key"),
    "DIGEST_DKIM_PRIVATE_KEY": ("dkim", "private_key"),
    "DIGEST_EDITOR_PASSWORD": ("web", "editor_password"),
    **{var: (provider.name, key) for provider in PROVIDERS.values()
       for var, key in provider.env.items()},
}
# A scrypt password hash as Werkzeug writes it: scrypt:N:r:p$salt$hex digest.
SCRYPT_HASH = re.compile(r"^scrypt:(\d+):(\d+):(\d+)\$([^$]+)\$([0-9a-f]+)$")
# [delivery] transport: one of the registry's names.
TransportName = Literal[tuple(PROVIDERS)]  # type: ignore[valid-type]


class DatabaseConfig(Section):
    url: DatabaseUrl = "sqlite:///digest.db"


class SiteConfig(Section):
    name: OneLine = "Example Newsroom"
    url: LinkUrl = "https://news.example.com"
    signin_url: LinkUrl = ""                 # may hold {url}: the story, URL-encoded
    postal_address: OneLine = ""             # printed in every footer (CAN-SPAM)
    language: str = "en-GB"                  # lang="…" and the date format (Babel)

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        from babel import Locale, UnknownLocaleError

        try:
            Locale.parse(value.replace("-", "_"))
        except (UnknownLocaleError, ValueError):
            raise ValueError(f"unknown language {value!r}: use a tag such as \"en-GB\", "
                             "\"fr\" or \"de-CH\"") from None
        return value


class SourceConfig(Section):
    name: str
    url: str
    timeout_seconds: float | None = None
    max_bytes: int | None = None


class CollectConfig(Section):
    timeout_seconds: float = Field(default=20.0, gt=0)
    max_bytes: int = Field(default=10_000_000, gt=0)
    user_agent: str = "newsroom-digest/0.1 (+https://github.com/)"
    # A feed's redirect to another host's loopback/private/unique-local address is refused
    # unless this is true; link-local (cloud metadata) is refused either way.
    allow_private_redirects: bool = False


class AccessConfig(Section):
    public_categories: list[str] = ["Free"]
    default_tier: str = ""
    teaser_label: OneLine = "Clients only"   # shown above each teaser; "" shows none


class EditionsConfig(Section):
    subject: OneLine = "{site} — {date:%d %B %Y}"     # becomes the Subject: header
    max_posts: int = Field(default=40, gt=0)
    first_edition_lookback_days: int = Field(default=7, ge=0)
    max_html_bytes: int = Field(default=100_000, gt=10_000)
    greeting_fallback: str = ""              # used as the name when a reader has none


class DeliveryConfig(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    transport: TransportName = "file"
    from_: MailAddress = Field(default="Example Digest <digest@news.example.com>", alias="from")
    reply_to: MailAddress = ""
    outbox: str = "outbox"
    unsubscribe_mailto: BareAddress = ""      # goes into List-Unsubscribe as it is
    batch_size: int = Field(default=100, gt=0)
    concurrency: int = Field(default=4, gt=0, le=64)
    rate_per_second: float = Field(default=0, ge=0)
    rate_per_hour: float = Field(default=0, ge=0)
    max_attempts: int = Field(default=5, gt=0)
    retry_base_seconds: float = Field(default=60.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    claim_timeout_seconds: float = Field(default=900.0, gt=0)
    uncertain: Literal["hold", "resend"] = "hold"
    max_wait_seconds: float = Field(default=120.0, ge=0)   # a run waits out provider pauses


class WebConfig(Section):
    base_url: LinkUrl = "https://digest.news.example.com"
    secret_key: SecretStr = SecretStr("")
    link_max_age_days: int = Field(default=365, gt=0)
    host: str = "127.0.0.1"                  # where `digest serve` listens
    port: int = Field(default=8000, gt=0, lt=65536)
    # Other sites whose pages may post the sign-up form ("https://news.example.com").
    subscribe_origins: list[str] = []
    subscribe_per_ip_per_hour: int = Field(default=20, gt=0)   # POST /subscribe per client IP

    @field_validator("subscribe_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not v.startswith(("https://", "http://")) or
               v.rstrip("/").count("/") > 2]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an origin; write scheme and host only, "
                             "e.g. \"https://news.example.com\"")
        return [v.rstrip("/") for v in value]
    # The editors' desk (/editor/): off (404) unless a password or its hash is set.
    editor_password: SecretStr = SecretStr("")
    editor_password_hash: SecretStr = SecretStr("")   # argon2 ($argon2id$…) or scrypt:N:r:p$…
    editor_email: BareAddress = ""           # where the desk sends test digests by default

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("editor_password_hash")
    @classmethod
    def _known_hash(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if text and not (text.startswith("$argon2") or SCRYPT_HASH.match(text)):
            raise ValueError("not an argon2 hash ($argon2id$…) nor a scrypt one "
                             "(scrypt:N:r:p$salt$hex); `digest editor-hash` makes one")
        return value


class BouncesConfig(Section):
    soft_bounce_limit: int = Field(default=3, gt=0)


class ScheduleConfig(Section):
    grace_minutes: int = Field(default=180, ge=0)     # a run missed by up to this much still goes
    tick_seconds: int = Field(default=60, ge=1)       # how often due runs and retries are checked
    stale_minutes: int = Field(default=15, gt=0)      # a run silent this long was abandoned


class AlertsConfig(Section):
    to: list[MailAddress] = []                        # admin addresses; empty: no alerts
    source_failures: int = Field(default=3, gt=0)     # alert when a source fails this many in a row


class SubscribersConfig(Section):
    check_deliverability: bool = False
    confirm_days: int = Field(default=7, gt=0)              # unconfirmed sign-ups expire
    confirm_resend_minutes: int = Field(default=10, ge=0)   # one confirmation email per address


class TemplatesConfig(Section):
    dir: str = ""


class LoggingConfig(Section):
    # "json": one JSON object a line on stderr, for log shippers (`--log-format` overrides).
    format: Literal["text", "json"] = "text"


class _Config(Section):
    """The sections that are not a provider's; :data:`Config` adds one per provider."""

    database: DatabaseConfig = DatabaseConfig()
    site: SiteConfig = SiteConfig()
    sources: list[SourceConfig] = []
    collect: CollectConfig = CollectConfig()
    access: AccessConfig = AccessConfig()
    tiers: dict[str, Tier] = {"free": TierConfig(access="teaser"),
                              "client": TierConfig(access="full")}
    subscribers: SubscribersConfig = SubscribersConfig()
    lists: dict[str, ListConfig] = {}
    editions: EditionsConfig = EditionsConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    bounces: BouncesConfig = BouncesConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    alerts: AlertsConfig = AlertsConfig()
    web: WebConfig = WebConfig()
    templates: TemplatesConfig = TemplatesConfig()
    logging: LoggingConfig = LoggingConfig()
    dkim: DkimConfig = DkimConfig()

    # Where the file was read from; relative paths in it resolve against this folder.
    base_dir: Path = Path(".")

    @model_validator(mode="after")
    def _check_cross_references(self) -> _Config:
        if not self.tiers:
            raise ValueError("[tiers] must name at least one tier, e.g. free = \"teaser\"")
        if self.access.default_tier and self.access.default_tier not in self.tiers:
            raise ValueError(
                f"[access] default_tier = {self.access.default_tier!r} is not a tier; "
                f"known tiers: {', '.join(self.tiers)}"
            )
        missing = _missing_credentials(self)
        if missing:
            raise ValueError(missing)
        names = [s.name for s in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"[[sources]] names must be unique; repeated: {', '.join(duplicates)}")
        return self

    @property
    def default_tier(self) -> str:
        return self.access.default_tier or next(iter(self.tiers))

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path made absolute against ``base_dir``."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith("sqlite:////"):
            rest = url[len(prefix):]
            if rest and rest != ":memory:" and not rest.startswith("file:"):
                return prefix + str(self.resolve_path(rest))
        return url

    @property
    def outbox_dir(self) -> Path:
        return self.resolve_path(self.delivery.outbox)

    def source_location(self, source: SourceConfig) -> str:
        """An http(s) URL as is; a local path resolved against the config's folder."""
        if re.match(r"^https?://", source.url, re.IGNORECASE):
            return source.url
        return str(self.resolve_path(source.url))


# One [section] per provider that has settings, named after it.
Config = create_model(
    "Config", __base__=_Config, __module__=__name__,
    **{name: (provider.settings, provider.settings()) for name, provider in PROVIDERS.items()
       if provider.settings is not None})  # type: ignore[call-overload]


def provider_settings(config: _Config, name: str) -> Section | None:
    """The named provider's own section of the config, or None when it has none."""
    return getattr(config, name) if PROVIDERS[name].settings is not None else None


def _missing_credentials(config: _Config) -> str:
    """What the configured transport lacks to send at all, or ""."""
    transport = config.delivery.transport
    provider = PROVIDERS[transport]
    section = provider_settings(config, transport)
    for key in provider.credentials:
        value = getattr(section, key)
        if not (value.get_secret_value() if isinstance(value, SecretStr) else value):
            env = next((var for var, target in provider.env.items() if target == key), None)
            return (f"[delivery] transport = {transport!r} needs [{transport}] {key}"
                    + (f" (or {env} in the environment)" if env else ""))
    return ""


def config_path_from(explicit: str | os.PathLike[str] | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("DIGEST_CONFIG")
    if env:
        return Path(env)
    return Path(DEFAULT_CONFIG_NAME)


def load_config(path: str | os.PathLike[str] | None = None,
                environ: dict[str, str] | None = None) -> Config:
    """Read, validate and return the config; raise :class:`ConfigError` naming the bad key."""
    config_path = config_path_from(path)
    if not config_path.exists():
        raise ConfigError(
            f"config file {config_path} not found",
            hint="copy config.example.toml to digest.toml, or pass --config PATH "
                 "(or set DIGEST_CONFIG)",
        )
    # A folder, an unreadable file or one in another encoding: a ConfigError, not a traceback.
    try:
        text = config_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{config_path}: not UTF-8 text ({exc.reason})",
                          hint="TOML files are UTF-8; save it as UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {config_path}: {exc.strerror}",
                          hint="pass --config PATH (or set DIGEST_CONFIG) to a readable "
                               "file") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid TOML: {exc}",
                          hint="fix the syntax at that line") from exc
    return config_from_dict(raw, base_dir=config_path.resolve().parent, source=config_path,
                            text=text, environ=environ)


def config_from_dict(raw: dict[str, Any], *, base_dir: Path, source: Path | str = "<config>",
                     text: str = "", environ: dict[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    data = {key: (dict(value) if isinstance(value, dict) else value) for key, value in raw.items()}
    for var, (section, key) in ENV_OVERRIDES.items():
        if environ.get(var):
            data.setdefault(section, {})
            if isinstance(data[section], dict):
                data[section][key] = environ[var]
    if "base_dir" in data:
        # base_dir is the file's folder, set here: a key of that name would be silently
        # overwritten, so it is refused like any other unknown key.
        line = _line_of(text, ["base_dir"])
        raise ConfigError(f"invalid config: {source}{f':{line}' if line else ''}: unknown key "
                          "'base_dir'", hint="relative paths resolve against the config "
                                             "file's folder; see config.example.toml")
    data["base_dir"] = base_dir
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, text),
                          hint="see config.example.toml for every key and its meaning") from None


def _describe(exc: ValidationError, source: Path | str, text: str) -> str:
    problems = []
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        if location and location[-1] == "from_":
            location[-1] = "from"
        where = _where(location)
        line = _line_of(text, location)
        at = f"{source}:{line}" if line else str(source)
        if error["type"] == "extra_forbidden":
            known = _known_keys(location[:-1])
            close = difflib.get_close_matches(location[-1], known, n=1)
            suggestion = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{at}: unknown key {where}{suggestion}")
        else:
            problems.append(f"{at}: {where}: {error['msg'].removeprefix('Value error, ')}")
    return "invalid config: " + "; ".join(problems)


def _where(location: list[str]) -> str:
    if not location:
        return "(top level)"
    head, *rest = location
    if head == "sources" and rest and rest[0].isdigit():
        return f"[[sources]] #{int(rest[0]) + 1} {'.'.join(rest[1:])}".strip()
    if not rest:
        return f"{head!r}"
    return f"[{head}] {'.'.join(rest)}"


def _line_of(text: str, location: list[str]) -> int | None:
    if not text or not location or location[-1].isdigit():
        return None
    key = location[-1]
    # Look inside the key's own section (the nth [[sources]] for a source): a key such as
    # timeout_seconds is in several sections, and the first in the file may not be the bad one.
    start, end = 0, len(text)
    if len(location) > 1:
        nth = int(location[1]) if len(location) > 2 and location[1].isdigit() else 0
        headers = list(re.finditer(rf"^[ \t]*\[+[ \t]*{re.escape(location[0])}[ \t]*\]+",
                                   text, re.MULTILINE))
        if nth < len(headers):
            start = headers[nth].end()
            following = re.compile(r"^[ \t]*\[", re.MULTILINE).search(text, start)
            end = following.start() if following else len(text)
    # [ \t]*, not \s*: \s would match the line breaks of blank lines above the key, and the
    # line reported would be the first of those.
    pattern = re.compile(rf"^[ \t]*\"?{re.escape(key)}\"?[ \t]*=|^[ \t]*\[+[ \t]*{re.escape(key)}"
                         rf"[ \t]*\]+", re.MULTILINE)
    match = pattern.search(text, start, end)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _known_keys(location: list[str]) -> list[str]:
    model: Any = Config
    for part in location:
        if part.isdigit():
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", None)
        model = args[0] if args else annotation
    fields = getattr(model, "model_fields", {})
    return [f.alias or name for name, f in fields.items() if name != "base_dir"]
