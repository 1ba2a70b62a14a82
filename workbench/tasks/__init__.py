"""Task families; importing this package registers the built-in ones."""
from . import sinusoid  # noqa: F401
