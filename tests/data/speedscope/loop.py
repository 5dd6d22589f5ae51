"""The workload of py-spy.speedscope.json (see README.md): two known
functions under one loop, `busy_a` doing about twice the work of `busy_b`."""
import time


def busy_a(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def busy_b(n):
    total = 0
    for i in range(n):
        total ^= i
    return total


def main():
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        busy_a(200_000)
        busy_b(100_000)


if __name__ == "__main__":
    main()
