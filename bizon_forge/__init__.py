"""bizon-forge: from "I need a destination for system X" to a registered, validated bizon destination."""

__version__ = "0.1.0"
