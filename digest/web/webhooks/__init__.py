"""One module per provider: how its bounce/complaint webhook is verified and read; and
:mod:`digest.web.webhooks.routes`, the endpoint they share.

A provider's module is named by its entry in :mod:`digest.transports.registry` and has
``from_settings(settings) -> Webhook | None`` (None when the webhook's secret is not
configured), given the provider's own config section, returning an object that meets
:class:`digest.web.webhooks.base.Webhook`.
"""
