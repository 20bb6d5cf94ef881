"""Command-line interface: one module per command group, no logic of its own."""
