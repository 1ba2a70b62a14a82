"""Task families; importing this package registers the built-in ones."""
from . import bandits, navigation, sinusoid, tabular  # noqa: F401
