"""Reproduce the paper's claims, one subcommand per claim: see :mod:`wavezoo.paper.commands`."""

from wavezoo.paper.commands import main
from wavezoo.paper.table1 import PAPER_TABLE1, table1, train_elman
from wavezoo.paper.theorem import theorem_checks

__all__ = ["PAPER_TABLE1", "main", "table1", "theorem_checks", "train_elman"]
