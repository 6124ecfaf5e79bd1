"""mcpgate: self-hosted MCP servers behind Tailscale Funnel, Authelia (OIDC) and agentgateway."""

__version__ = "0.1.0"
