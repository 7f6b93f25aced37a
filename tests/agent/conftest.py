from providers.fixtures import client, provider, server

__all__ = ["client", "provider", "server"]
