from providers.fixtures import anthropic_server, claude, client, provider, server

__all__ = ["anthropic_server", "claude", "client", "provider", "server"]
