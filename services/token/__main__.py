"""`python -m services.token`: run the token service."""

from services.token.app import main

main()
