"""`python -m services.collector`: run the collector service."""

from services.collector.app import main

main()
