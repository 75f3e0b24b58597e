"""``python -m bulkstop`` runs the command line."""

from bulkstop.cli import program

program()
