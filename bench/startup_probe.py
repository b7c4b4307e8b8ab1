"""Runs `python cli.py train ...` in this process and marks when each phase ends.

bench/speed.py spawns it as `python bench/startup_probe.py train --dataset
digits ...` and compares its marks (`time.time()`) with the moment it spawned
it. The real command line runs (`cli.cli`, the same flags); the probe only
wraps `keras.Model.fit`, to note when fit is called and, through a callback
placed first, when each compiled call of `train_function` begins and ends.

Marks, printed as one JSON line after `SPEED_RESULT `:

    started          this file's first statement
    keras_imported   TensorFlow and Keras imported (the CLI would import them
                     a moment later; the total is the same)
    fit_called       the CLI has built the data, the networks and the callbacks
    calls            begin and end of the first compiled calls
    steps_per_call   steps per compiled call
    finished         the CLI returned (grids, checkpoint and export written)
"""

import time

STARTED = time.time()  # first: the parent compares it with its spawn time

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_MARKER = "SPEED_RESULT "


def main(argv):
    sys.path.insert(0, REPO_DIR)
    import keras

    import cli

    marks = {"started": STARTED, "keras_imported": time.time()}
    calls = []

    class CallMarks(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            calls.append({"begin": time.time()})

        def on_train_batch_end(self, batch, logs=None):
            calls[-1]["end"] = time.time()

    original_fit = keras.Model.fit

    def fit(self, *args, callbacks=None, **kwargs):
        marks["fit_called"] = time.time()
        marks["steps_per_call"] = int(self.steps_per_execution)
        if isinstance(callbacks, keras.callbacks.CallbackList):  # the CLI's
            marker = CallMarks()
            marker.set_model(self)
            callbacks.callbacks.insert(0, marker)
        else:
            callbacks = [CallMarks(), *(callbacks or [])]
        return original_fit(self, *args, callbacks=callbacks, **kwargs)

    keras.Model.fit = fit
    cli.cli.main(args=argv, prog_name="cli.py", standalone_mode=False)
    marks["finished"] = time.time()
    marks["calls"] = calls[:4]
    print(RESULT_MARKER + json.dumps(marks), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
