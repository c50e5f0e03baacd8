"""python -m llem: the same as the llem command (used as a Ray Job entrypoint)."""

from llem.cli import main

if __name__ == "__main__":
    main()
