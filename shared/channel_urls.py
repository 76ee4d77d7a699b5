"""What of a notification channel URL (an apprise URL) may be shown to people."""

from __future__ import annotations


def is_hostname(host: str) -> bool:
    """A real host (a dotted name, an IP address, localhost). Several apprise schemes put a
    token where the host goes (slack://TokenA/..., discord://webhook_id/..., tgram://bot
    token/...): such a "host" is a secret too."""
    return "." in host or ":" in host or host == "localhost"
