"""dalib: Depth Anything rebuilt to learn from.

Import the pieces you need from their modules (``dalib.losses``, ``dalib.augment``,
``dalib.model``, ...); importing ``dalib`` itself stays light.
"""

__version__ = "0.1.0"
