"""The web side: provider webhooks, unsubscribe pages (an ASGI app, served by `digest serve`)."""
