"""A worked example of a cbrun plugin package; cbrun imports its modules through entry points."""
