"""Transports hand finished messages to the world: a file outbox, SMTP, an email API.

Each meets :class:`digest.deliver.Transport`, declared by its caller, the delivery code.
"""
