"""The notifier: events that matter to people, delivered as messages by rules."""
