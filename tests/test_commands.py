"""Every command the documentation shows still runs: those in README.md's code blocks, the
configs' docstrings and the benchmarks' docstrings, each checked without the work it starts
(--dry_run for the launcher and reproduce: the config is resolved and data, model and program
built; --help for the benchmarks: their flags are parsed)."""
import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _joined(lines):
  """Lines with trailing-backslash continuations joined."""
  out, cur = [], ""
  for line in lines:
    cur += line.rstrip()
    if cur.endswith("\\"):
      cur = cur[:-1] + " "
    else:
      out.append(cur.strip())
      cur = ""
  return out


def documented_commands() -> list[tuple[str, str]]:
  """(where, command) for every `python -m ...` command of the docs, `pip install ... &&`
  prefixes dropped, `[--flag]` optional parts kept as given, trailing comments removed."""
  found = []
  with open(os.path.join(ROOT, "README.md")) as f:
    readme = f.read()
  for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S):
    found += [("README.md", c) for c in _joined(block.splitlines())]
  for path in sorted(glob.glob(os.path.join(ROOT, "experiments/configs/*.py")) +
                     glob.glob(os.path.join(ROOT, "benchmarks/*.py"))):
    with open(path) as f:
      text = f.read()
    doc = re.match(r'\s*r?"""(.*?)"""', text, flags=re.S)
    if doc:
      found += [(os.path.relpath(path, ROOT), c) for c in _joined(doc.group(1).splitlines())]
  commands = []
  for where, c in found:
    c = re.sub(r"^pip install [^&]*&&\s*", "", c.split("  #")[0]).strip()
    c = re.sub(r"\s\[(--[\w=.:-]+)\]", r" \1", c)          # '[--quick]': check it given
    if c.startswith("python -m ") and "pytest" not in c:
      commands.append((where, c))
  return commands


COMMANDS = documented_commands()


def test_the_docs_show_commands():
  assert len(COMMANDS) >= 15
  assert any("experiments.main" in c for _, c in COMMANDS)
  assert any("experiments.reproduce" in c for _, c in COMMANDS)


@pytest.mark.parametrize("where, command", COMMANDS, ids=[f"{w}: {c[:70]}" for w, c in COMMANDS])
def test_documented_command_runs(where, command, tmp_path):
  args = shlex.split(command)[1:]
  module = args[1]
  args = [a.replace("/tmp/", f"{tmp_path}/").replace("=DIR", f"={tmp_path}/dir")
          for a in args]
  if module in ("experiments.main", "experiments.reproduce"):
    args.append("--dry_run")
  elif module.startswith("benchmarks."):
    args.append("--help")
  out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
  if module.startswith("benchmarks."):   # absl's --help exits 1, after parsing every flag
    assert "Try --helpfull" in out.stdout and not out.stderr, f"{where}: {command}\n{out.stderr}"
    return
  assert out.returncode == 0, f"{where}: {command}\n{out.stderr[-3000:]}"
  assert not os.listdir(tmp_path), "a dry run wrote files"
