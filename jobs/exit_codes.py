"""Exit codes, the same for every command."""

OK = 0          # in sync / done
FAILED = 1      # unreachable, unauthorised, aborted by a safety guard
USAGE = 2       # bad usage or configuration
CONFLICTS = 3   # finished, with conflicts left for an administrator
