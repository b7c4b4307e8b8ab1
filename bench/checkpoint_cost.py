"""What checkpointing costs a small run: `python bench/checkpoint_cost.py`.

Trains the seed MLP on digits through `keras_gan.runs.train` (the CLI's code
path) with the default checkpoint schedule and with a checkpoint forced at
every epoch's end (`checkpoint_every` = one epoch), interleaved over
`--rounds`, and prints each run's training seconds, the seconds spent writing
checkpoints (`summary.json`), their share, and the checkpoints written. The
machine's load average is printed beside them.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS_PER_EPOCH = 28  # digits (1797 images) at batch 64


def one_run(schedule, epochs, folder):
    from keras_gan import runs

    every = STEPS_PER_EPOCH if schedule == "every_epoch" else None
    runs.train(
        "bench",
        dataset="digits",
        epochs=epochs,
        runs_dir=os.path.join(folder, "runs"),
        export_dir=os.path.join(folder, "saved_models"),
        checkpoint_every=every,
        checkpoint_budget=None if schedule == "every_epoch" else 0.05,
        keep_checkpoints=1,
        sample_every=epochs,
        verbose=0,
    )
    with open(os.path.join(folder, "runs", "bench", "summary.json")) as file:
        summary = json.load(file)
    return (
        summary["train_seconds"],
        summary["checkpoint_seconds"],
        summary["checkpoints_written"],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, REPO_DIR)
    results = {"default": [], "every_epoch": []}
    for _ in range(args.rounds):
        for schedule in results:
            with tempfile.TemporaryDirectory() as folder:
                results[schedule].append(one_run(schedule, args.epochs, folder))
    print(
        f"load average {os.getloadavg()[0]:.2f}; {args.epochs} epochs of "
        f"{STEPS_PER_EPOCH} steps, {args.rounds} rounds (medians)"
    )
    print(
        f"{'schedule':<12} {'train s':>8} {'checkpoint s':>13} {'share':>7} "
        f"{'written':>8}"
    )
    for schedule, rows in results.items():
        train, writing, written = (
            statistics.median(r[i] for r in rows) for i in range(3)
        )
        print(
            f"{schedule:<12} {train:8.2f} {writing:13.3f} {writing / train:7.1%} "
            f"{written:8.0f}"
        )


if __name__ == "__main__":
    main()
