"""What training on your own folder of images costs: `python bench/own_data.py`.

Generates `--images` RGB image files of varied sizes (80 to 120 pixels wide,
60 to 120 high; half PNG, half JPEG at quality 90) under `--work`, each a
smooth two-colour gradient with a radial light, two to six filled ellipses,
rectangles and triangles, a slight blur and Gaussian noise, drawn by NumPy
and Pillow from a seed per file (deterministic; a folder made by an earlier
run with the same `--images` is reused). Then prints, one line per figure:

1. decode: `keras_gan.data.open_source(folder, image_size=64, channels=3,
   cache_dir=...)` with an empty cache (cold: every file decoded, centre
   cropped and resized into the cache's uint8 `images.npy`), in images per
   second, and then with the entry present (warm: the file mapped, nothing
   decoded), in seconds, beside `make_dataset` on the warm entry. The files
   are in the page cache either way: cold is decoding, not disk reads.
2. pipeline alone: `make_dataset(..., in_memory=True)` (the images copied
   into one tensor, a gather per batch) against `in_memory=False` (batches
   read from the memory-mapped cache with `os.pread`), iterated in Python
   for `--pipeline-batches` float32 batches after the first, `--rounds`
   rounds alternating which goes first; the median, in images per second.
3. training: a DCGAN 64x64x3 (`networks.build("dcgan", 100, (64, 64, 3))`,
   `GAN.compile()` defaults, Adam(2e-4, beta_1=0.5)) fed by each pipeline:
   one `fit` call to trace, `--warmup` steps on each, then `--rounds` rounds
   of `fit(steps_per_epoch=--steps)` on each (alternating which goes first),
   timed whole (a `fit` call's set-up included); median images per second,
   the ratio streamed / in-memory, and the load average beside each.
4. memory: a `--big-images` x 64 x 64 x 3 uint8 `.npy` (1.23 GB for
   100,000; the decoded images tiled, written in chunks through
   `np.lib.format.open_memmap`) read for `--stream-batches` batches by
   `dataset_from_arrays(np.load(path, mmap_mode="r"), in_memory=False)` and
   `in_memory=True`, each in a fresh subprocess (timed: building the
   pipeline, its first batch, then the batches after it): peak resident memory
   (`ru_maxrss`, `/proc/self/status` VmHWM), peak RssAnon and RssFile
   (sampled every 2 ms) against the process's own before it built the
   pipeline (TensorFlow imported and started), beside the data's uint8 and
   float32 sizes. RssFile counts the file's pages mapped into the process
   (VmHWM includes them); RssAnon is the memory the process holds itself.
   The big file is removed at the end unless `--keep`.

Sections 1 to 3 (and writing the big file) run in one subprocess, so that
the parent stays small: Linux carries a parent's peak RSS over into a
child's `ru_maxrss` across fork and exec, and the memory workers are the
parent's children (their `ru_maxrss` at start is printed to show it).

Usage:

    python bench/own_data.py            # 3,000 images, 100,000 big; ~5 min on 2 cores
    python bench/own_data.py --quick    # 300 images, 20,000 big; ~2 min

Timings share the machine with whatever else runs: compare the lines of one
run, and read the load averages printed beside them.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 64
CHANNELS = 3
LATENT_DIM = 100
GENERATOR_VERSION = 1  # bump when make_image changes: older folders are redone
MIB = 2**20

FULL = {
    "images": 3000,
    "big_images": 100_000,
    "rounds": 3,
    "pipeline_batches": 300,
    "steps": 4,
    "warmup": 2,
    "stream_batches": 300,
}
QUICK = {
    "images": 300,
    "big_images": 20_000,
    "rounds": 2,
    "pipeline_batches": 100,
    "steps": 2,
    "warmup": 1,
    "stream_batches": 300,
}


def make_image(index, seed):
    """One deterministic PIL image of a varied size: gradient, shapes, noise."""
    from PIL import Image
    from PIL import ImageDraw
    from PIL import ImageFilter

    rng = np.random.default_rng([seed, index])
    width, height = int(rng.integers(80, 121)), int(rng.integers(60, 121))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = x * np.cos(angle) + y * np.sin(angle)
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    first, last = rng.uniform(0, 255, (2, 3))
    pixels = first + ramp[..., None] * (last - first)
    centre_x, centre_y = rng.uniform(0, width), rng.uniform(0, height)
    distance = np.hypot(x - centre_x, y - centre_y) / max(width, height)
    pixels *= (1.25 - 0.7 * distance)[..., None]
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 7))):
        kind = int(rng.integers(3))
        colour = tuple(int(value) for value in rng.integers(0, 256, 3))
        x0, x1 = np.sort(rng.uniform(-0.2, 1.2, 2)) * width
        y0, y1 = np.sort(rng.uniform(-0.2, 1.2, 2)) * height
        if kind == 0:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif kind == 1:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            corners = rng.uniform(0, 1, (3, 2)) * (width, height)
            draw.polygon([tuple(corner) for corner in corners], fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.4)))
    noisy = np.asarray(image, np.float32) + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))


def image_folder(work, count, seed=0):
    """The folder of `count` generated images under `work`, made if absent
    (built under another name and renamed: a half-written one is not kept)."""
    folder = os.path.join(work, f"images-{count}-v{GENERATOR_VERSION}-s{seed}")
    if os.path.isdir(folder):
        return folder, False
    partial = folder + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    for index in range(count):
        image = make_image(index, seed)
        if index % 2:
            image.save(os.path.join(partial, f"{index:06d}.jpg"), quality=90)
        else:
            image.save(os.path.join(partial, f"{index:06d}.png"))
    os.replace(partial, folder)
    return folder, True


def folder_bytes(folder):
    return sum(entry.stat().st_size for entry in os.scandir(folder))


def load_text():
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} / {five:.2f} / {fifteen:.2f}"


def timed(call):
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def section_decode(folder, cache, args):
    from keras_gan import data

    settings = {"image_size": SIZE, "channels": CHANNELS, "cache_dir": cache}
    shutil.rmtree(cache, ignore_errors=True)
    lines = []
    source, cold = timed(lambda: data.open_source(folder, log=lines.append, **settings))
    count = source.num_images
    print(
        f"decode cold: {count:,} images in {cold:.2f} s = {count / cold:,.0f} "
        f"images/s (open_source, empty cache, {min(16, os.cpu_count() or 1)} "
        f"threads; {load_text()})"
    )
    lines.clear()
    warm_source, warm = timed(
        lambda: data.open_source(folder, log=lines.append, **settings)
    )
    hit = any(line.startswith("loaded ") for line in lines)
    print(
        f"open warm: {warm:.3f} s (open_source, cache {'hit' if hit else 'MISS'}: "
        f"{'; '.join(lines) or 'no log line'})"
    )
    _, warm_dataset = timed(
        lambda: data.make_dataset(
            folder, batch_size=args.batch_size, seed=args.seed, **settings
        )
    )
    print(f"make_dataset warm: {warm_dataset:.3f} s (cache hit, pipeline built)")
    entry_mib = os.path.getsize(os.path.join(warm_source.cache_path, "images.npy"))
    print(
        f"cache entry: {warm_source.cache_path}, images.npy {entry_mib / MIB:.1f} "
        f"MiB, {type(warm_source.images).__name__} {warm_source.images.shape}"
    )
    return warm_source


def pipeline_rate(dataset, batches, batch_size):
    """Images per second pulled from `dataset` by Python, after the first."""
    iterator = iter(dataset)
    next(iterator)  # the iterator's start and the first pass's order
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def interleaved(names, rounds, measure):
    """`measure(name)` for each name, `rounds` times, alternating the order."""
    results = {name: [] for name in names}
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            results[name].append(measure(name))
    return results


def figures(values):
    return ", ".join(f"{value:,.0f}" for value in values)


def section_pipeline(folder, cache, args):
    from keras_gan import data

    settings = {"image_size": SIZE, "channels": CHANNELS, "cache_dir": cache}
    datasets = {
        name: data.make_dataset(
            folder,
            batch_size=args.batch_size,
            seed=args.seed,
            in_memory=name == "in-memory",
            **settings,
        )
        for name in ("in-memory", "streamed")
    }
    load_before = load_text()
    results = interleaved(
        list(datasets),
        args.rounds,
        lambda name: pipeline_rate(
            datasets[name].repeat(), args.pipeline_batches, args.batch_size
        ),
    )
    medians = {name: statistics.median(values) for name, values in results.items()}
    for name, values in results.items():
        print(
            f"pipeline {name}: {medians[name]:,.0f} images/s (median of "
            f"{len(values)}: {figures(values)}; {args.pipeline_batches} batches of "
            f"{args.batch_size} float32 64x64x3)"
        )
    ratio = medians["streamed"] / medians["in-memory"]
    print(
        f"pipeline streamed / in-memory: {ratio:.2f} ({load_before} before, "
        f"{load_text()} after)"
    )
    return datasets


def section_train(datasets, args):
    import keras

    from keras_gan import GAN
    from keras_gan import networks

    generator, discriminator = networks.build(
        "dcgan", LATENT_DIM, (SIZE, SIZE, CHANNELS)
    )
    gan = GAN(generator, discriminator, seed=args.seed)
    gan.compile(
        d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
    )
    feeds = {name: dataset.repeat() for name, dataset in datasets.items()}

    def fit(name, steps):
        _, seconds = timed(
            lambda: gan.fit(feeds[name], epochs=1, steps_per_epoch=steps, verbose=0)
        )
        return steps * args.batch_size / seconds

    batch = args.batch_size
    _, first = timed(lambda: fit("in-memory", 1))
    print(
        f"train DCGAN 64x64x3, batch {batch}: first fit call (1 step, trace) "
        f"{first:.1f} s; jit_compile={gan.jit_compile}, "
        f"steps_per_execution={gan.steps_per_execution}; {load_text()}"
    )
    for name in feeds:
        rate = fit(name, args.warmup)
        print(
            f"train warm-up {name}: {args.warmup} steps at {rate:,.1f} images/s "
            f"(not counted; {load_text()})"
        )
    results = interleaved(list(feeds), args.rounds, lambda name: fit(name, args.steps))
    medians = {name: statistics.median(values) for name, values in results.items()}
    for name, values in results.items():
        print(
            f"train {name}: {medians[name]:,.1f} images/s = "
            f"{medians[name] / batch:.2f} steps/s (median of {len(values)} fit calls "
            f"of {args.steps} steps: {', '.join(f'{v:,.1f}' for v in values)}; "
            f"{load_text()})"
        )
    per_round = [
        s / m for s, m in zip(results["streamed"], results["in-memory"], strict=True)
    ]
    print(
        f"train streamed / in-memory: {medians['streamed'] / medians['in-memory']:.3f}"
        f" (per round: {', '.join(f'{r:.3f}' for r in per_round)}; {load_text()})"
    )


def write_big(path, count, tile):
    """`count` x 64 x 64 x 3 uint8 rows of `tile` repeated, written in 64 MiB
    chunks to `path` (through a partial file: a crash leaves no such `path`)."""
    if os.path.exists(path):
        existing = np.load(path, mmap_mode="r")
        if existing.shape == (count, SIZE, SIZE, CHANNELS):
            return False
    partial = path + ".partial"
    images = np.lib.format.open_memmap(
        partial, mode="w+", dtype=np.uint8, shape=(count, SIZE, SIZE, CHANNELS)
    )
    rows = (64 * MIB) // images[0].nbytes
    for start in range(0, count, rows):
        stop = min(count, start + rows)
        images[start:stop] = tile[np.arange(start, stop) % len(tile)]
    images.flush()
    del images
    os.replace(partial, path)
    return True


def memory_kib():
    """This process's VmRSS, VmHWM, RssAnon and RssFile in KiB."""
    wanted = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
    found = {}
    with open("/proc/self/status") as file:
        for line in file:
            name, _, value = line.partition(":")
            if name in wanted:
                found[name] = int(value.split()[0])
    return found


class PeakSampler(threading.Thread):
    """Samples RssAnon and RssFile every 2 ms; keeps their peaks (KiB)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peaks = memory_kib()
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.002):
            self.sample()

    def sample(self):
        now = memory_kib()
        for name in ("RssAnon", "RssFile"):
            self.peaks[name] = max(self.peaks[name], now[name])

    def stop(self):
        self.done.set()
        self.join()
        self.sample()
        return self.peaks


def worker(args):
    """One memory measurement (a subprocess): prints a JSON line `RESULT {...}`."""
    at_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.path.insert(0, REPO_DIR)
    import tensorflow as tf

    from keras_gan import data

    tf.constant(1.0) + 1.0  # the runtime started: part of the baseline
    before = memory_kib()
    sampler = PeakSampler()
    sampler.start()
    start = time.perf_counter()
    images = np.load(args.big_path, mmap_mode="r")
    dataset = data.dataset_from_arrays(
        images,
        batch_size=args.batch_size,
        seed=args.seed,
        in_memory=args.worker == "in-memory",
    )
    built = time.perf_counter()
    iterator = iter(dataset)
    next(iterator)  # the iterator's start: in memory, it copies the images
    first = time.perf_counter()
    for _ in range(args.stream_batches):
        next(iterator)
    end = time.perf_counter()
    peaks = sampler.stop()
    result = {
        "build_s": built - start,
        "first_s": first - built,
        "iterate_s": end - first,
        "before": before,
        "after": memory_kib(),
        "peak_anon_kib": peaks["RssAnon"],
        "peak_file_kib": peaks["RssFile"],
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "ru_maxrss_at_start_kib": at_start,
        "streamed": data.in_memory_source(dataset).streamed,
    }
    print("RESULT " + json.dumps(result), flush=True)


def run_worker(name, path, args):
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        name,
        "--big-path",
        path,
        "--batch-size",
        str(args.batch_size),
        "--stream-batches",
        str(args.stream_batches),
        "--seed",
        str(args.seed),
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=900, check=False
    )
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(
        f"memory worker {name} exited with {completed.returncode} and no result; "
        f"its stderr ends:\n{completed.stderr[-3000:]}"
    )


def big_path(args):
    return os.path.join(args.work, f"big-{args.big_images}.npy")


def section_big_file(tile, args):
    """Writes (or reuses) section 4's big file; run where `tile` is at hand."""
    count = args.big_images
    uint8_bytes = count * SIZE * SIZE * CHANNELS
    path = big_path(args)
    written, seconds = timed(lambda: write_big(path, count, tile))
    print(
        f"big cache: {count:,} x 64x64x3 uint8 = {uint8_bytes / 1e9:.2f} GB "
        f"(float32 {uint8_bytes * 4 / 1e9:.2f} GB) "
        f"{f'written in {seconds:.1f} s' if written else 'reused'}: {path}",
        flush=True,
    )


def section_memory(args):
    uint8_bytes = args.big_images * SIZE * SIZE * CHANNELS
    float_bytes = uint8_bytes * 4
    sizes = f"uint8 {uint8_bytes / MIB:,.0f} MiB, float32 {float_bytes / MIB:,.0f} MiB"
    for name in ("streamed", "in-memory"):
        result = run_worker(name, big_path(args), args)
        before, after = result["before"], result["after"]
        images = args.stream_batches * args.batch_size
        print(
            f"memory {name} (in_memory={name == 'in-memory'}, streamed="
            f"{result['streamed']}): pipeline built in {result['build_s']:.2f} s, "
            f"first batch (iterator start) {result['first_s']:.2f} s, then "
            f"{args.stream_batches} batches of {args.batch_size} in "
            f"{result['iterate_s']:.2f} s = {images / result['iterate_s']:,.0f} "
            f"images/s; {load_text()}"
        )
        added = (result["peak_anon_kib"] - before["RssAnon"]) * 1024
        held = (after["RssAnon"] - before["RssAnon"]) * 1024
        print(
            f"memory {name}: peak RSS {after['VmHWM'] / 1024:,.0f} MiB (VmHWM; "
            f"{before['VmHWM'] / 1024:,.0f} before the pipeline), ru_maxrss "
            f"{result['ru_maxrss_kib'] / 1024:,.0f} MiB; RssAnon "
            f"{before['RssAnon'] / 1024:,.0f} before, peak "
            f"{result['peak_anon_kib'] / 1024:,.0f} = +{added / MIB:,.0f} MiB "
            f"({added / uint8_bytes:.0%} of uint8, {added / float_bytes:.0%} of "
            f"float32), +{held / MIB:,.0f} MiB at the end; RssFile "
            f"{before['RssFile'] / 1024:,.0f} before, peak "
            f"{result['peak_file_kib'] / 1024:,.0f} MiB",
            flush=True,
        )
    print(
        f"memory sizes: {sizes}; ru_maxrss at the worker's start "
        f"{result['ru_maxrss_at_start_kib'] / 1024:,.0f} MiB (Linux carries it "
        f"over from the parent across fork and exec)"
    )


def forwarded(args):
    """`args` as command-line flags, for the `--part train` subprocess."""
    flags = []
    for name in (*FULL, "batch_size", "seed", "work"):
        flags += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return flags


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small, fast run")
    parser.add_argument("--work", default="/tmp/keras-gan-bench-own-data")
    parser.add_argument("--images", type=int, help="generated image files")
    parser.add_argument("--big-images", type=int, help="rows of the big .npy")
    parser.add_argument("--rounds", type=int, help="interleaved rounds")
    parser.add_argument("--pipeline-batches", type=int, help="batches per timing")
    parser.add_argument("--steps", type=int, help="DCGAN steps per fit call")
    parser.add_argument("--warmup", type=int, help="DCGAN warm-up steps, each")
    parser.add_argument("--stream-batches", type=int, help="batches, section 4")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the big .npy")
    hidden = argparse.SUPPRESS
    parser.add_argument("--worker", choices=("streamed", "in-memory"), help=hidden)
    parser.add_argument("--part", choices=("train",), help=hidden)
    parser.add_argument("--big-path", help=hidden)
    parser.add_argument("--folder", help=hidden)
    args = parser.parse_args()
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def train_part(args):
    """Sections 1 to 3 and the big file, in a subprocess: TensorFlow, the
    decoded images and the DCGAN stay out of the parent, whose peak RSS the
    memory workers would inherit as their ru_maxrss."""
    sys.path.insert(0, REPO_DIR)
    import keras
    import tensorflow as tf

    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__} "
        f"({keras.backend.backend()} backend)",
        flush=True,
    )
    cache = os.path.join(args.work, "cache")
    source = section_decode(args.folder, cache, args)
    datasets = section_pipeline(args.folder, cache, args)
    section_train(datasets, args)
    section_big_file(np.asarray(source.images), args)


def main():
    args = parse_args()
    if args.worker:
        worker(args)
        return
    if args.part:
        train_part(args)
        return
    started = time.perf_counter()
    print(
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {load_text()}",
        flush=True,
    )
    os.makedirs(args.work, exist_ok=True)
    (folder, made), seconds = timed(lambda: image_folder(args.work, args.images))
    print(
        f"folder: {args.images:,} files (PNG and JPEG, 80-120 x 60-120), "
        f"{folder_bytes(folder) / MIB:.1f} MiB, "
        f"{f'generated in {seconds:.1f} s' if made else 'reused'}: {folder}",
        flush=True,
    )
    path = big_path(args)
    try:
        command = [sys.executable, "-u", os.path.abspath(__file__), "--part", "train"]
        subprocess.run(
            [*command, "--folder", folder, *forwarded(args)], check=True, timeout=3600
        )
        section_memory(args)
    finally:
        if not args.keep:
            for stale in (path, path + ".partial"):
                if os.path.exists(stale):
                    os.remove(stale)
                    print(f"removed {stale} (--keep keeps it)")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
