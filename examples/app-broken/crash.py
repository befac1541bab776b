#!/usr/bin/python3
"""A release that exits at start (for the rollback tests)."""
import sys

print("crash.py: refusing to start (broken on purpose)", flush=True)
sys.exit(3)
