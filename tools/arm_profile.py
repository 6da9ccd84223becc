"""Where the guest instructions go: tools/insn_count.c's per-block counts (blocks=FILE) attributed to the files the
guest had mapped (a copy of its /proc/self/maps, which tools/arm_cost_run.py writes when WREN_MAPS_OUT is set) and,
within shared objects that have a symbol table, to their functions.

    python tools/arm_profile.py BLOCKS MAPS ROOT [BLOCKS2 MAPS2 N]

With a second run, prints the difference per token, (run2 - run1) / N, as tools/arm_cost.sh does for totals.
ROOT is the arm64 userland (the guest's paths are read from there); symbols come from aarch64-linux-gnu-nm.
"""
import bisect
import collections
import os
import subprocess
import sys


def read_maps(path):
    spans = []
    for line in open(path):
        parts = line.split()
        if len(parts) < 6 or "x" not in parts[1]:
            continue
        lo, hi = (int(v, 16) for v in parts[0].split("-"))
        spans.append((lo, hi, int(parts[2], 16), parts[5]))
    return sorted(spans)


def symbols(root, path):
    """(start offsets, names) of the functions of a guest file, by file offset (text of PIC .so: vaddr == offset)."""
    host = os.path.join(root, path.lstrip("/"))
    if not os.path.isfile(host):
        host = path
    try:
        out = subprocess.run(["aarch64-linux-gnu-nm", "--defined-only", "-n", host], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return [], []
    starts, names = [], []
    for line in out.splitlines():
        p = line.split()
        if len(p) == 3 and p[1] in "tTwW":
            starts.append(int(p[0], 16))
            names.append(p[2])
    return starts, names


def attribute(blocks, maps, root):
    spans = read_maps(maps)
    los = [s[0] for s in spans]
    by_file, by_sym = collections.Counter(), collections.Counter()
    syms = {}
    for line in open(blocks):
        vaddr, n, execs = line.split()
        vaddr, count = int(vaddr, 16), int(n) * int(execs)
        i = bisect.bisect_right(los, vaddr) - 1
        if i < 0 or vaddr >= spans[i][1]:
            by_file["(unmapped: the dynamic loader before the copy, or JIT)"] += count
            continue
        lo, hi, off, name = spans[i]
        short = os.path.basename(name)
        by_file[short] += count
        if name not in syms:
            syms[name] = symbols(root, name)
        starts, names = syms[name]
        j = bisect.bisect_right(starts, vaddr - lo + off) - 1
        by_sym[f"{short}:{names[j] if j >= 0 else '?'}"] += count
    return by_file, by_sym


def main():
    blocks, maps, root = sys.argv[1:4]
    f1, s1 = attribute(blocks, maps, root)
    if len(sys.argv) > 4:
        f2, s2 = attribute(sys.argv[4], sys.argv[5], root)
        n = float(sys.argv[6])
        f1 = {k: (f2.get(k, 0) - f1.get(k, 0)) / n for k in set(f1) | set(f2)}
        s1 = {k: (s2.get(k, 0) - s1.get(k, 0)) / n for k in set(s1) | set(s2)}
    total = sum(f1.values())
    print(f"total {total / 1e6:.2f} M")
    for title, table in (("by file", f1), ("by function", s1)):
        print(title)
        for k, v in sorted(table.items(), key=lambda kv: -kv[1])[:25]:
            print(f"  {v / 1e6:9.3f} M  {100 * v / total:5.1f}%  {k}")


if __name__ == "__main__":
    main()
