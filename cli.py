"""The design's entry point, `python cli.py train|sample|evaluate|...`.

The command line lives in `keras_gan/cli.py` (also `python -m keras_gan` and
the `keras-gan` console script); this file only runs it.
"""

from keras_gan.cli import cli

if __name__ == "__main__":
    cli(prog_name="python cli.py")
