"""One module per provider: how its bounce/complaint webhook is verified and read.

Each module has ``from_config(config) -> Webhook | None`` (None when the webhook's secret is not
configured) returning an object that meets :class:`digest.web.webhooks.base.Webhook`.
"""
