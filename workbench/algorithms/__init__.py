"""Meta-learning algorithms; importing this package registers the built-in ones."""
from . import anil, baselines, maml, maml_trpo, metasgd, pearl, protonet, reptile, rl2  # noqa: F401
