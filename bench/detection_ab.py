"""Detection of two builds, outage after outage in turn (A, B, A, B, ...), so that a
drift of the machine or the emulator over the run weighs on both alike:
    .venv/bin/python bench/detection_ab.py OLD_BINARY NEW_BINARY [PAIRS]"""
import statistics as st
import sys

import emulator


def main():
    builds = {"A": sys.argv[1], "B": sys.argv[2]}
    pairs = int(sys.argv[3]) if len(sys.argv) > 3 else 12
    times = {k: [] for k in builds}
    for _ in range(pairs):
        for k, binary in builds.items():
            emulator.BIN = binary
            times[k].append(emulator.detection(1, 1000, 3, 500)["median_s"])
    for k, xs in times.items():
        print(f"{k} {builds[k]}: n={len(xs)} median {st.median(xs):.3f} s mean {st.mean(xs):.3f} s "
              f"best {min(xs):.3f} s worst {max(xs):.3f} s")


if __name__ == "__main__":
    main()
