"""Meta-learning algorithms; importing this package registers the built-in ones."""
from . import anil, baselines, maml, metasgd, reptile  # noqa: F401
