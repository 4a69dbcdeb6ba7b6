"""The command line: click commands (`hsm-snake`, and `hsm` for v1's forms) and rich terminal views only.

Every command is a thin wrapper over a library function; nothing below this package prints."""
