"""`cbrun sweep`: expand a base config into trials, run them as ordinary runs, rank the results."""
