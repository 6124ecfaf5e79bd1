"""One pyinfra @deploy per component, each given the deploy context (``ctx``) by ``deploy.py``; each
turns the model into operations of :mod:`mcpgate.hostops` and nothing else."""
