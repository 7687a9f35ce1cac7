"""Provider webhooks end to end: real HTTP to the real app under uvicorn, on SQLite and PostgreSQL.

One module per provider; test_common drives what every provider does alike.

Every provider's calls are built the way the provider documents them (payload shapes from its
examples, signatures by its scheme) and signed here with test keys: an ECDSA P-256 key for
SendGrid, an RSA key and a self-signed certificate for SNS (served by an injected fetcher in
place of sns.<region>.amazonaws.com), HMAC secrets for Mailgun and Resend, Basic credentials for
Postmark. The published test vectors of SendGrid, Svix and a message really signed by SNS check
that the schemes are the providers' and not only agreed with ourselves.
"""
