"""Is this the benchmark set the reference numbers were measured on? Compare wavs with a manifest.

    python scripts/check_benchmark_set.py DATASET_PATH MANIFEST

MANIFEST lines are ``LJSpeech-1.1/wavs/<ID>.wav,<samples>,<md5 of the 16-bit PCM samples>`` (the
eSpeak NG maker's manifest_rate142.csv), paths relative to DATASET_PATH. Prints how many clips match
and names the first few that are missing or differ; exits 1 unless every clip matches.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys

import soundfile


def clip_fingerprint(path: str) -> tuple[int, str]:
    """(sample count, md5 of the 16-bit PCM samples)."""
    samples, _ = soundfile.read(path, dtype="int16", always_2d=False)
    return len(samples), hashlib.md5(samples.tobytes()).hexdigest()


def compare(dataset_path: str, manifest: str) -> tuple[int, list[str]]:
    """-> (clips that match, one line per clip that is missing or differs)."""
    matched, problems = 0, []
    with open(manifest, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            relative, n_samples, md5 = line.strip().split(",")
            path = os.path.join(dataset_path, relative)
            if not os.path.exists(path):
                problems.append(f"{path}: missing (manifest line {number})")
                continue
            found = clip_fingerprint(path)
            if found != (int(n_samples), md5):
                problems.append(f"{path}: {found[0]} samples, md5 {found[1]}; the manifest says "
                                f"{n_samples} samples, md5 {md5}")
            else:
                matched += 1
    return matched, problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset_path", help="the folder holding LJSpeech-1.1")
    parser.add_argument("manifest", help="path,samples,md5 per clip")
    args = parser.parse_args(argv)
    matched, problems = compare(args.dataset_path, args.manifest)
    print(f"{matched} of {matched + len(problems)} clips match {args.manifest}")
    for problem in problems[:5]:
        print(f"  {problem}")
    if len(problems) > 5:
        print(f"  ... and {len(problems) - 5} more")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
