"""`digest dns-records`: the SPF, DKIM and DMARC records the sending domain should publish."""

from __future__ import annotations

from email.utils import parseaddr

import typer

from digest.cli.console import out
from digest.cli.context import state
from digest.errors import InputError


def dns_records(ctx: typer.Context) -> None:
    """Print the SPF, DKIM (public key from [dkim]'s private key) and DMARC records to publish."""
    from digest.dkim import dns_records as records

    application = state(ctx).app
    signer = application.dkim_signer
    if signer is None:
        raise InputError("[dkim] is not configured: there is no key to publish",
                         hint="set [dkim] domain, selector and private_key_file (or "
                              "DIGEST_DKIM_PRIVATE_KEY); see config.example.toml")
    sender = parseaddr(application.config.delivery.from_)[1]
    sending_domain = sender.rsplit("@", 1)[-1]
    rows = records(signer.key, sending_domain=sending_domain,
                   report_address=application.config.dkim.dmarc_reports)
    # Zone-file lines, never wrapped (a wrapped key cannot be pasted); TXT values over 255
    # characters are split into quoted strings, as DNS requires.
    typer.echo("; Publish these DNS records (zone-file syntax):")
    for name, kind, value in rows:
        chunks = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
        typer.echo(f"{name}. IN {kind} {chunks}")
    out.print("SPF: add the hosts or include: of your SMTP relay or email API to the record; "
              "DMARC starts at p=none: raise it to quarantine once reports look clean.",
              markup=False, highlight=False)
