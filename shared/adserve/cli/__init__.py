"""The `adserve` command line: campaigns, logs, caps and model commands."""
