"""Exit codes, the same for every command."""

OK = 0          # in sync / done
FAILED = 1      # failed, refused by a safety cap, or stopped by SIGTERM
USAGE = 2       # bad usage or configuration
CONFLICTS = 3   # finished, with conflicts left for an administrator
INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT): what was written stays, a re-run continues
