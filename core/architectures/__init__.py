"""The built-in serving architectures, chosen by ``mode``."""
