"""Summarise a py-spy raw (collapsed stacks) profile: inclusive share per frame.

    .venv/bin/python bench/profile_top.py PROFILE.txt [--top 30] [--match TEXT]

Lines of a raw profile are ``frame;frame;...;frame COUNT``, outermost first. A frame's
inclusive share is the fraction of samples in which it appears at least once. Idle
samples (threads waiting in ``select``/``epoll``/locks) are counted separately so the
percentages are of busy samples.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

IDLE = re.compile(r"\b(select|poll|epoll_wait|_worker \(concurrent/futures/thread.py|wait \(threading.py|"
                  r"_wait_for_tstate_lock|acquire)\b")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("profile", type=Path)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--match", help="only frames containing this text")
    args = ap.parse_args()
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    busy = idle = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        leaf = frames[-1]
        if IDLE.search(leaf) or "(idle)" in leaf:
            idle += count
            continue
        busy += count
        own[leaf] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"{args.profile.name}: {busy} busy samples, {idle} idle samples")
    print("inclusive:")
    for frame, n in inclusive.most_common():
        if args.match and args.match not in frame:
            continue
        if n / max(busy, 1) < 0.01:
            break
        print(f"  {100 * n / max(busy, 1):5.1f}%  {frame}")
        args.top -= 1
        if args.top <= 0:
            break
    print("self (leaf):")
    for frame, n in own.most_common(15):
        print(f"  {100 * n / max(busy, 1):5.1f}%  {frame}")


if __name__ == "__main__":
    main()
