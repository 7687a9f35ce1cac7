"""The config sections of the transports: ``[smtp]`` and one per email-API provider.

Plain pydantic models and nothing else, so that :mod:`digest.config` (and the registry it
reads) can import them without importing any transport code. A provider's adapter, and its
webhook, receive their own section and never the whole config.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator


class Section(BaseModel):
    """A table of the config file: unknown keys are errors, values do not change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def one_line(value: str) -> str:
    """Refuse a CR or LF: the value would end up inside a mail header (see CVE-2024-6923)."""
    if "\r" in value or "\n" in value:
        raise ValueError("must be one line (no line breaks)")
    return value


# A value that reaches a mail header or an SMTP command.
OneLine = Annotated[str, AfterValidator(one_line)]


class SmtpConfig(Section):
    host: str = "localhost"
    port: int = Field(default=587, gt=0, lt=65536)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str = ""
    password: SecretStr = SecretStr("")
    timeout_seconds: float = Field(default=30.0, gt=0)
    # Sent in EHLO: smtplib would refuse a line break only when the first message goes out.
    local_hostname: OneLine = ""


class ApiConfig(Section):
    """What every email-API provider section has."""

    base_url: str = ""                       # empty: the provider's public API
    timeout_seconds: float = Field(default=30.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


class PostmarkConfig(ApiConfig):
    token: SecretStr = SecretStr("")
    message_stream: str = "broadcast"
    webhook_username: str = ""
    webhook_password: SecretStr = SecretStr("")


class SendgridConfig(ApiConfig):
    api_key: SecretStr = SecretStr("")
    webhook_public_key: SecretStr = SecretStr("")   # base64 DER, from Mail Settings
    webhook_max_age_seconds: int = Field(default=600, gt=0)


class MailgunConfig(ApiConfig):
    api_key: SecretStr = SecretStr("")
    domain: str = ""
    region: Literal["us", "eu"] = "us"
    webhook_signing_key: SecretStr = SecretStr("")
    webhook_max_age_seconds: int = Field(default=600, gt=0)


class ResendConfig(ApiConfig):
    api_key: SecretStr = SecretStr("")
    webhook_secret: SecretStr = SecretStr("")       # "whsec_…"
    webhook_max_age_seconds: int = Field(default=300, gt=0)


class SesConfig(ApiConfig):
    region: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: SecretStr = SecretStr("")
    session_token: SecretStr = SecretStr("")
    configuration_set: str = ""
    sns_topic_arn: str = ""                  # only notifications from this topic are accepted
