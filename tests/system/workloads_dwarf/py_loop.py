# A pure-Python loop: everything runs in the interpreter, whose library
# (pyenv's libpython3.11) has no frame pointers. Usage: python3 py_loop.py SECONDS
import sys
import time


def inner(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def outer(seconds):
    end = time.monotonic() + seconds
    acc = 0
    while time.monotonic() < end:
        acc += inner(20000)
    return acc


if __name__ == "__main__":
    outer(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
