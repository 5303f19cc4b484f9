"""Recipes: one module per command, main(argv) -> exit code. The only place that wires components together."""
