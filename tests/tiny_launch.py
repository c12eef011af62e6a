"""The tiny engine-test config as a launcher config file (tests/test_train.py, test_launcher.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny  # noqa: E402


def get_config(variant=""):
  del variant
  c = tiny.config(steps=40, lrs=(0.05, 0.2))
  c.train.keep = "log:4"
  return c
