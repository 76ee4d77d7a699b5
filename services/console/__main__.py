"""`python -m services.console`: run the operators' console."""

from services.console.app import main

main()
