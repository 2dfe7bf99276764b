"""Sums a callgrind dump by each function's own instructions (callgrind_annotate attributes
Rust's inlined frames in Lakescope's binary to `clone`, so the dump is read here).

Usage: python3 tests/bench/cgsum.py DUMP DIVISOR LABEL UNIT
Prints the instructions divided by DIVISOR (per UNIT) and the ten functions
with the most instructions of their own.
"""

import collections
import re
import sys


def own_instructions(path):
    names, own, fn, skip = {}, collections.Counter(), None, False

    def resolve(spec):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?", spec)
        if not m:
            return spec
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), spec)

    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if line.startswith("fn="):
            fn = resolve(line[3:])
        elif line.startswith("cfn="):
            resolve(line[4:])
        elif line.startswith("calls="):
            skip = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if skip:
                skip = False  # the inclusive cost of a call, not the caller's own
            elif fn:
                parts = line.split()
                if len(parts) > 1:
                    own[fn] += int(parts[1])
    return own


def main():
    path, divisor, label, unit = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
    own = own_instructions(path)
    total = sum(own.values())
    per = total / divisor
    giga = f" ({per / 1e9:.4f} G)" if per >= 1e7 else ""
    print(f"{label}: {per:,.0f} instructions{giga} per {unit}")
    for f, c in own.most_common(10):
        print(f"  {100 * c / total:5.1f} %  {f[:120]}")


if __name__ == "__main__":
    main()
