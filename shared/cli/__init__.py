"""Helpers for `amcctl`, the operator CLI: each service's cli.py builds its command group with
them; the root that gathers the groups is `services/amcctl.py`."""
