"""Listener privacy: consent and the serving mode it allows, keyed pseudonyms, erasure."""
