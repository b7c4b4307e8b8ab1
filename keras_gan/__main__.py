"""`python -m keras_gan ...`: the command line of `keras_gan.cli`."""

from keras_gan.cli import cli

if __name__ == "__main__":
    cli(prog_name="python -m keras_gan")
