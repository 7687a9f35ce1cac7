"""Moving bytes to an email API: one shared httpx client, and vendor trouble mapped to ours.

The adapters (postmark.py, sendgrid.py, …) translate messages to a vendor's JSON and its
answers to :class:`SendResult` values; this module only posts and classifies. Credentials are
request headers set by the adapter and never appear in an error message.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from digest.errors import TransportError


def make_client(*, timeout: float, user_agent: str = "newsroom-digest/0.1") -> httpx.Client:
    """One client per provider and process, shared by its sending threads (httpx.Client is
    thread-safe and pools connections)."""
    return httpx.Client(timeout=timeout, headers={"User-Agent": user_agent},
                        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))


class ApiClient:
    """Posts to one provider's API and turns what cannot be a per-message result into a
    :class:`TransportError`: network trouble, timeouts, rate limits, server errors, bad
    credentials."""

    def __init__(self, provider: str, base_url: str, client: httpx.Client, *,
                 headers: Mapping[str, str] | None = None,
                 auth: httpx.Auth | tuple[str, str] | None = None) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._client = client
        self._headers = dict(headers or {})
        self._auth = auth

    def post(self, path: str, *, json: Any = None, data: Any = None, files: Any = None,
             headers: Mapping[str, str] | None = None) -> httpx.Response:
        url = f"{self.base_url}{path}"
        try:
            response = self._client.post(url, json=json, data=data, files=files,
                                         auth=self._auth,
                                         headers={**self._headers, **(headers or {})})
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing left this machine: safe to send again.
            raise TransportError(f"{self.provider}: cannot reach {url}: "
                                 f"{type(exc).__name__}: {exc}", retry=True) from None
        except httpx.HTTPError as exc:
            # The request went out and no (whole) answer came back: the provider may have
            # accepted it. The caller decides — an idempotency key makes a resend safe.
            raise TransportError(f"{self.provider}: no answer from {url} "
                                 f"({type(exc).__name__})", retry=True,
                                 maybe_sent=True) from None
        return response

    def raise_for_batch_failure(self, response: httpx.Response) -> None:
        """Raise for answers that concern the whole request rather than one recipient."""
        status = response.status_code
        if status == 429:
            raise TransportError(f"{self.provider}: rate limited (429): {brief(response)}",
                                 retry=True, retry_after=retry_after(response))
        if status >= 500:
            raise TransportError(f"{self.provider}: server error {status}: {brief(response)}",
                                 retry=True, retry_after=retry_after(response))
        if status in (401, 403):
            raise TransportError(
                f"{self.provider}: the API refused our credentials ({status}): "
                f"{brief(response)}", retry=False,
                hint=f"check the [{self.provider}] credentials (they are never printed)")


def retry_after(response: httpx.Response, *, now: float | None = None) -> float | None:
    """Seconds the provider asked us to wait: Retry-After (seconds or an HTTP date), the IETF
    ratelimit-reset (seconds), or X-RateLimit-Reset (a Unix time)."""
    now = time.time() if now is None else now
    value = response.headers.get("retry-after", "").strip()
    if value:
        if value.isdigit():
            return float(value)
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return max(0.0, (parsed - datetime.fromtimestamp(now, UTC)).total_seconds())
    reset = response.headers.get("ratelimit-reset", "").strip()
    if reset.isdigit():
        return float(reset)
    epoch = response.headers.get("x-ratelimit-reset", "").strip()
    if epoch.isdigit():
        return max(0.0, float(epoch) - now)
    return None


def brief(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:300] + ("…" if len(text) > 300 else "")
