"""The people: mailing lists, subscribers, their subscriptions and suppressed addresses."""
