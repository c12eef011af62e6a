"""Figure definitions for experiments/reproduce.py, one module per phenomenon."""


def claim(name: str, measured, expected: str, holds: bool, **extra) -> dict:
  """One line of a report: what was measured, what theory or the paper expects, and the verdict."""
  return dict(claim=name, measured=measured, expected=expected, holds=bool(holds), **extra)
