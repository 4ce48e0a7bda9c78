"""One small module per CLI command; ``sslbench.cli`` adds each to the click group."""
