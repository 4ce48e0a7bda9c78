"""sslbench: benchmark and reproduce self-supervised and contrastive representation learning."""

__version__ = "0.1.0"
