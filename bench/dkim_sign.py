"""DKIM: the cost of signing each message (RSA-2048, rsa-sha256), against building it unsigned,
for our signer (digest/dkim.py: our canonicalisation + cryptography) and for dkimpy's
dkim.sign. Every signature is checked with dkimpy once before timing."""

from __future__ import annotations

import argparse
import statistics
import time

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bench.common import Row, median_of, print_table, verdict
from bench.personalise import recipients, setup
from digest.dkim import SIGNED_HEADERS, DkimKey, DkimSigner

# The delivery issue's throughput: 327 msg/s measured through SMTP (README, Performance).
SMTP_RATE = 327


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--posts", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    key = DkimKey.load("news.example.com", "digest", pem, source="bench")
    signer = DkimSigner(key)
    _renderer, _views, builder = setup(args.posts)
    people = recipients(args.messages)
    record = f"v=DKIM1; k=rsa; p={key.public_key_base64()}".encode()
    sample = builder.build(people[0]).raw
    assert dkim.verify(signer.sign(sample), dnsfunc=lambda name, timeout=5: record)
    headers = [name.encode() for name in SIGNED_HEADERS]
    # dkimpy returns the DKIM-Signature header alone, to put in front of the message.
    assert dkim.verify(dkim.sign(sample, b"digest", b"news.example.com", pem,
                                 canonicalize=(b"relaxed", b"simple"), include_headers=headers)
                       + sample, dnsfunc=lambda name, timeout=5: record)

    def per_message(sign) -> float:  # noqa: ANN001
        started = time.perf_counter()
        for person in people:
            sign(builder.build(person).raw)
        return (time.perf_counter() - started) / len(people)

    def rsa_alone() -> float:
        started = time.perf_counter()
        for _ in people:
            private.sign(b"x" * 600, padding.PKCS1v15(), hashes.SHA256())
        return (time.perf_counter() - started) / len(people)

    # Interleaved runs: on a shared machine speed drifts from one second to the next.
    unsigned_runs, ours_runs, floor_runs = [], [], []
    for _ in range(args.runs):
        unsigned_runs.append(per_message(lambda raw: raw))
        ours_runs.append(per_message(signer.sign))
        floor_runs.append(rsa_alone())
    unsigned, ours, floor = (statistics.median(runs) for runs in (unsigned_runs, ours_runs,
                                                                  floor_runs))
    theirs, _ = median_of(args.runs, lambda: per_message(
        lambda raw: dkim.sign(raw, b"digest", b"news.example.com", pem,
                              canonicalize=(b"relaxed", b"simple"), include_headers=headers)
        + raw))
    ours_cost, theirs_cost = ours - unsigned, theirs - unsigned
    print_table(
        f"DKIM signing, RSA-2048, a {len(sample) / 1024:.0f} KB message "
        f"(medians of {args.runs} runs of {args.messages})",
        [Row("build unsigned, per message", f"{unsigned * 1e6:.0f} µs"),
         Row("the RSA-2048 signature alone (the floor)", f"{floor * 1e6:.0f} µs"),
         Row("sign with digest.dkim (cryptography), extra", f"{ours_cost * 1e6:.0f} µs",
             "≤ floor + 100 µs", verdict(ours_cost <= floor + 100e-6)),
         Row("sign with dkimpy, extra", f"{theirs_cost * 1e6:.0f} µs"),
         Row("digest.dkim vs dkimpy", f"{theirs_cost / ours_cost:.1f}× faster"),
         Row("signed messages per second, one core", f"{1 / ours:,.0f}/s",
             f"≥ {SMTP_RATE}/s (SMTP)", verdict(1 / ours >= SMTP_RATE))])


if __name__ == "__main__":
    main()
