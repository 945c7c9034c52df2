"""Reports: tables and comparisons of run folders."""
