"""Shared test fixtures. Every server in the tests listens on 127.0.0.1 only."""
