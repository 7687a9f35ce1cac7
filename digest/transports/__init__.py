"""Transports hand finished messages to the world: a file outbox, SMTP, an email API.

Each meets :class:`digest.transports.base.Transport`, declared by its caller, the delivery code.
"""
