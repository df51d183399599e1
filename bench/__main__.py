"""`python -m bench ...` is the `bench` command; torchrun needs it: `torchrun -m bench run ...`."""

from bench.cli import app

if __name__ == "__main__":
    app(prog_name="bench")
