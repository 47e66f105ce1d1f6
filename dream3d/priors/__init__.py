"""The primitives world and the bundled prior's model code."""
