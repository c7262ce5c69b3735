"""Faithful local Webitel and Creatio API servers for the demo, end-to-end tests and benchmarks."""
