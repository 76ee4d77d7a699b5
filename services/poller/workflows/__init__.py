"""Saved AMC workflows: files on disk, the `/workflows` API (push, plan, validate) and its CLI."""
