"""``python -m notes_vault`` runs the server (configuration from NOTES_VAULT_* env vars)."""

from notes_vault.server import main

if __name__ == "__main__":
    main()
