"""User files: progdel.yaml and Canary specs, parsed and validated with pydantic."""
