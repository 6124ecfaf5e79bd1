"""notes-vault: an MCP server for an Obsidian-style Markdown vault (search, read, write, delete)."""

__version__ = "0.1.0"
