"""Pure functions and declarative tables that turn one system's records into the other's. No I/O."""
