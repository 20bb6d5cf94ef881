"""progdel: progressive delivery on Kubernetes, driven from the command line."""

__version__ = "0.1.0"
