"""Runs edfast's benchmarks: ``python bench/run.py --suite quick|full --device cpu|cuda
[--cases PATTERN]`` (the same as ``edfast bench ...``). See bench/README.md."""
import sys

from edfast.benchmarks.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
