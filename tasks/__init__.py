"""One pyinfra @deploy per component; each turns the model into operations and nothing else."""
