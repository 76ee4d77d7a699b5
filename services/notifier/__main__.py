"""`python -m services.notifier`: run the notifier service."""

from services.notifier.app import main

main()
