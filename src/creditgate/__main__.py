"""`python -m creditgate`: the command line."""

from creditgate.cli import main

main()
