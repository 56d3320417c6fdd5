"""Choosing ads: the request/response contract, the catalog, targeting, the serving policy, the service."""
