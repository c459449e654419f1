"""Jobs that run on the db nodes."""
