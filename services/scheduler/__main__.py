"""`python -m services.scheduler`: run the scheduler service."""

from services.scheduler.app import main

main()
