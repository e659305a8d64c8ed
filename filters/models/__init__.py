"""Model files shipped with the package (fastText's lid.176.ftz), read through `importlib.resources`."""
