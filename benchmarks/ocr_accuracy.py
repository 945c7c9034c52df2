"""OCR accuracy and speed: the twin's numpy OCR against gocr, ocrad and tesseract.

Generates image spam with ``twin.stages.ocr.imagespam`` (stock-pump and
pharmacy text, random fonts, sizes and colours; tricks plain, noise, shapes,
rotate; encoded as GIF or JPEG and decoded again as the stage does), reads
each image with the twin's engine and with every Debian OCR program found on
PATH (gocr and ocrad read PPM, tesseract PNG), and matches each reading
against FuzzyOcr.words with the stage's fuzzy matcher. Prints, per engine:

- word recall: list words planted in the images that were found (micro mean);
- flagged: images whose matches reach counts_required (2), i.e. would score;
- recall per trick set (plain, noise, shapes, rotate, noise+shapes);
- seconds per image (wall time of this host; the external programs include
  their process start, as they did under FuzzyOCR).

Target: the twin's recall within 10 points of the best external OCR while
at least 10x faster. Engines not installed are listed as "not installed"
(``apt-get install gocr ocrad tesseract-ocr`` on Debian).

    python benchmarks/ocr_accuracy.py [--images N] [--seed S]

OpenBLAS threads are pinned to one (set before numpy loads) so the template
matching does not fight other processes for the cores.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import io  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from twin.stages.ocr.engine import read_mask  # noqa: E402
from twin.stages.ocr.glyphs import default_recogniser  # noqa: E402
from twin.stages.ocr.imagespam import spam_image  # noqa: E402
from twin.stages.ocr.masks import scansets  # noqa: E402
from twin.stages.ocr.words import load_word_list, match_words  # noqa: E402

TRICK_SETS = (("plain",), ("noise",), ("shapes",), ("rotate",), ("noise", "shapes"))
EXTERNAL = {
    "gocr": lambda path: ["gocr", "-i", str(path.with_suffix(".ppm"))],
    "ocrad": lambda path: ["ocrad", str(path.with_suffix(".ppm"))],
    "tesseract": lambda path: ["tesseract", str(path.with_suffix(".png")), "stdout"],
}


def make_images(count: int, seed: int) -> list[tuple[np.ndarray, tuple[str, ...]]]:
    """Spam images as the stage sees them (encoded, decoded) with planted words."""
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        tricks = TRICK_SETS[index % len(TRICK_SETS)]
        picture, planted, _ = spam_image(rng, tricks)
        out = io.BytesIO()
        if index % 3 == 2:
            picture.save(out, "JPEG", quality=80)
        else:
            picture.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(
                out, "GIF"
            )
        rgb = np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("RGB"))
        images.append((rgb, tuple(p.replace(" ", "") for p in planted)))
    return images


def twin_reader(all_scansets: bool):
    """Lines read by the twin: the first scanset, or every scanset (word max)."""

    def read(rgb: np.ndarray) -> tuple[list[list[str]], float]:
        start = time.perf_counter()
        readings = []
        for scanset in scansets(rgb, 4 if all_scansets else 0):
            reading = read_mask(scanset.mask, levelled=scanset.levelled)
            readings.append(list(reading.lines))
            if not all_scansets:
                break
        return readings, time.perf_counter() - start

    return read


def external_reader(name: str, folder: Path):
    def read(rgb: np.ndarray) -> tuple[list[list[str]], float]:
        path = folder / "image"
        suffix = ".png" if name == "tesseract" else ".ppm"
        Image.fromarray(rgb).save(path.with_suffix(suffix))
        start = time.perf_counter()
        done = subprocess.run(EXTERNAL[name](path), capture_output=True, timeout=120)
        seconds = time.perf_counter() - start
        return [done.stdout.decode("latin-1").splitlines()], seconds

    return read


def evaluate(read, images, words) -> tuple[float, float, int, dict[str, float]]:
    """Recall, seconds per image (reading only), images flagged, recall per trick."""
    planted_total = found_total = flagged = 0
    seconds = 0.0
    per_trick: dict[str, list[int]] = {}
    for index, (rgb, planted) in enumerate(images):
        readings, spent = read(rgb)
        seconds += spent
        best: dict[str, int] = {}
        for lines in readings:
            for word, count in match_words(lines, words, 0.25).lines_per_word:
                best[word] = max(best.get(word, 0), count)
        found = sum(1 for word in planted if best.get(word))
        planted_total += len(planted)
        found_total += found
        flagged += sum(best.values()) >= 2
        trick = "+".join(TRICK_SETS[index % len(TRICK_SETS)])
        tally = per_trick.setdefault(trick, [0, 0])
        tally[0] += found
        tally[1] += len(planted)
    recalls = {trick: hit / total for trick, (hit, total) in per_trick.items()}
    return found_total / planted_total, seconds / len(images), flagged, recalls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2006)
    args = parser.parse_args()
    words = load_word_list()
    images = make_images(args.images, args.seed)
    default_recogniser()  # templates are built once per process, not per image
    pixels = sum(rgb.shape[0] * rgb.shape[1] for rgb, _ in images) / len(images)
    print(f"{len(images)} generated spam images, {pixels:,.0f} px on average")
    print(f"{'engine':<22} {'recall':>7} {'flagged':>8} {'s/image':>9}")
    rows = {}
    for label, read in (
        ("twin (first scanset)", twin_reader(False)),
        ("twin (all scansets)", twin_reader(True)),
    ):
        rows[label] = evaluate(read, images, words)
    with tempfile.TemporaryDirectory() as folder:
        for name in EXTERNAL:
            if shutil.which(name) is None:
                rows[name] = None
                continue
            rows[name] = evaluate(external_reader(name, Path(folder)), images, words)
    for label, row in rows.items():
        if row is None:
            print(f"{label:<22} {'not installed':>26}")
            continue
        recall, seconds, flagged, _ = row
        share = f"{flagged}/{len(images)}"
        print(f"{label:<22} {recall:>7.1%} {share:>8} {seconds:>9.4f}")
    shown = {k: v for k, v in rows.items() if v is not None}
    print("recall per trick set (images cycle through them; every 3rd is JPEG):")
    print(f"{'engine':<22} " + " ".join(f"{'+'.join(t):>12}" for t in TRICK_SETS))
    for label, row in shown.items():
        cells = " ".join(f"{row[3].get('+'.join(t), 0.0):>12.1%}" for t in TRICK_SETS)
        print(f"{label:<22} {cells}")
    external = {k: v for k, v in rows.items() if v is not None and k in EXTERNAL}
    if external:
        best = max(external, key=lambda k: external[k][0])
        ours = rows["twin (first scanset)"]
        gap = (external[best][0] - ours[0]) * 100
        speedup = external[best][1] / ours[1]
        verdict = "met" if gap <= 10 and speedup >= 10 else "NOT met"
        print(
            f"best external: {best}; twin recall {gap:+.1f} points behind, "
            f"{speedup:.0f}x faster (target within 10 points and 10x: {verdict})"
        )


if __name__ == "__main__":
    main()
