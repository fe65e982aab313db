"""One module per ``task=`` of the CLI; each exposes ``run(plain_config) -> exit code``."""
