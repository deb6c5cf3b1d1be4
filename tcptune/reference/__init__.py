"""The built-in reference behind ``tcptune explain``: topic files and their loader."""
