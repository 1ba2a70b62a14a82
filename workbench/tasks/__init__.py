"""Task families; importing this package registers the built-in ones."""
from . import bandits, cartpole, glyphs, image_folders, navigation, pendulum, sinusoid, tabular  # noqa: F401
from . import cheetah  # noqa: F401,E402 (registers without MuJoCo; MuJoCo is imported on first use)
