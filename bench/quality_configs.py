"""Quality of keras_gan's recommended configurations on the real Fashion-MNIST.

Runs each configuration's exact `cli.py train` command (unless its run folder
already holds a finished run), then scores its export with keras_gan's own
evaluator (n = 10,000 per set, the Fashion-MNIST domain classifier), beside
the rows that make the targets classifier-independent: the real-vs-real
floor and real images degraded by Gaussian pixel noise (std 0.1, pixels in
[0, 1]) or by a Gaussian blur (sigma 0.5). Prints the Markdown table README
carries and writes it with the raw results to `--out`.

Usage:

    python bench/quality_configs.py --out bench/results/quality_configs
    python bench/quality_configs.py --only fmnist-fast   # one configuration
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import scipy.ndimage

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = f"python cli.py train --data-dir {FASHION_MNIST}"

# name -> the flags after `python cli.py train --data-dir ...`
CONFIGS = {
    "fmnist-fast": "--architecture dcgan --conditional --batch-size 128 "
    "--mixed-precision mixed_bfloat16 --epochs 12 --evaluate-every 6 --keep-best",
    "fmnist-dcgan-long": "--architecture dcgan --conditional --batch-size 128 "
    "--mixed-precision mixed_bfloat16 --epochs 40 --evaluate-every 8 --keep-best",
}
COLUMNS = (
    ("frechet_distance", "FD", ".2f"),
    ("kid", "KID", ".3f"),
    ("recall", "recall", ".3f"),
    ("classes_covered", "classes", "d"),
    ("label_agreement", "label agreement", ".3f"),
)


def degraded_rows(evaluator, images):
    """Real images outside the evaluator's reference set, degraded."""
    order = np.random.default_rng(evaluator.seed).permutation(len(images))
    count = evaluator.num_samples
    real = images[order[count : 2 * count]].astype(np.float32) / 255.0
    noisy = np.clip(real + np.random.default_rng(1).normal(0, 0.1, real.shape), 0, 1)
    blurred = scipy.ndimage.gaussian_filter(real, sigma=(0, 0.5, 0.5, 0))
    rows = [("real images (the floor)", dict(evaluator.floor), None, "")]
    for name, degraded in (
        ("real + Gaussian noise, std 0.1", noisy),
        ("real, Gaussian blur, sigma 0.5", blurred),
    ):
        result = evaluator.evaluate_images((degraded * 2 - 1).astype(np.float32))
        rows.append((name, result, None, ""))
    return rows


def run_config(name, flags, runs_dir, export_dir):
    command = (
        f"{TRAIN} {flags} --name {name} --runs-dir {runs_dir} --export-dir {export_dir}"
    )
    summary = os.path.join(runs_dir, name, "summary.json")
    if not os.path.exists(summary):
        print(f"running: {command}", flush=True)
        os.makedirs(runs_dir, exist_ok=True)
        with open(os.path.join(runs_dir, f"{name}.log"), "w") as log:
            subprocess.run(
                command.split() + ["--sample-every", "5"],
                cwd=ROOT,
                check=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    with open(summary) as file:
        seconds = json.load(file)["train_seconds"]
    return command.replace(f" --runs-dir {runs_dir} --export-dir {export_dir}", ""), (
        seconds
    )


def markdown(rows):
    header = ["configuration", *(title for _, title, _ in COLUMNS), "train time"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, result, seconds, _ in rows:
        cells = [name]
        for key, _, spec in COLUMNS:
            value = result.get(key)
            cells.append("" if value is None else format(value, spec))
        cells.append("" if seconds is None else f"{seconds / 60:.1f} min")
        lines.append("| " + " | ".join(cells) + " |")
    commands = [f"- {name}: `{command}`" for name, _, _, command in rows if command]
    return "\n".join(lines + [""] + commands)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/quality_configs")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--export-dir", default="saved_models")
    parser.add_argument("--only", nargs="*", default=list(CONFIGS))
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    import keras_gan
    from keras_gan import evaluation
    from keras_gan import export

    os.makedirs(args.out, exist_ok=True)
    evaluator = evaluation.Evaluator.for_dataset(data_dir=FASHION_MNIST)
    images, _ = keras_gan.data.load_arrays(data_dir=FASHION_MNIST)
    rows = degraded_rows(evaluator, images)
    print(markdown(rows), flush=True)
    for name in args.only:
        command, seconds = run_config(
            name, CONFIGS[name], args.runs_dir, args.export_dir
        )
        start = time.perf_counter()
        generate = evaluation.from_saved_model(
            export.load_export(os.path.join(args.export_dir, name))
        )
        result = evaluator.evaluate_generator(
            generate, num_classes=generate.num_classes
        )
        print(f"{name}: scored in {time.perf_counter() - start:.1f} s", flush=True)
        rows.append((name, result, seconds, command))
        print(markdown(rows[-1:]), flush=True)
    table = markdown(rows)
    print(table)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load}")
    with open(os.path.join(args.out, "table.md"), "w") as file:
        file.write(table + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as file:
        json.dump(
            [
                {"name": name, "seconds": seconds, "command": command, **result}
                for name, result, seconds, command in rows
            ],
            file,
            indent=2,
            default=str,
        )


if __name__ == "__main__":
    main()
