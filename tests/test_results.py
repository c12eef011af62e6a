"""docs/results.md is generated from report.json files, the same bytes for the same reports."""
import json

from experiments import results

REPORT = dict(figure="a", quick=False, steps=None, seconds=12.5, device="cpu (2 cores)",
              date="2026-12-04", git_commit="0123456789abcdef", all_hold=False,
              settings={"gd": "mlp (9 parameters) on digits"},
              claims=[dict(claim="x | y", measured=[1.23456, None], expected="in [0, 1]",
                           holds=True),
                      dict(claim="z", measured={"k": 0.5}, expected="> 1", holds=False)],
              notes=["a note"])


def test_render_is_deterministic_and_says_everything():
  reports = {"a": json.loads(json.dumps(REPORT)), "b": None}
  descriptions = {"a": "figure a", "b": "figure b"}
  text = results.render(reports, descriptions)
  assert text == results.render(json.loads(json.dumps(reports)), descriptions)
  assert "| x \\| y | [1.235, n/a] | in [0, 1] | holds |" in text
  assert "| z | {k: 0.5} | > 1 | FAILS |" in text
  assert ("run time 12.5 s (the call that drew it); device cpu (2 cores); date 2026-12-04; "
          "commit 0123456789.") in text
  # a report that recorded its runs' training time
  timed = dict(json.loads(json.dumps(REPORT)), seconds=130.2, train_seconds=121.0)
  assert ("run time 130.2 s (121.0 s training, over all launches); device cpu (2 cores)"
          in results.render({"a": timed}, {"a": "figure a"}))
  assert "- `gd`: mlp (9 parameters) on digits" in text and "Note: a note" in text
  assert "Not yet run at full settings: `python -m experiments.reproduce --figure=b`" in text
  assert "1 of 2 figures have a full-settings report; 0 of them hold every claim." in text


def test_publish_takes_full_settings_reports_only(tmp_path, monkeypatch):
  monkeypatch.setattr(results, "DOCS", str(tmp_path / "docs"))
  run = tmp_path / "run"
  run.mkdir()
  (run / "report.json").write_text(json.dumps(dict(REPORT, quick=True)))
  assert not results.publish("a", str(run))
  (run / "report.json").write_text(json.dumps(REPORT))
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig = plt.figure(figsize=(20, 10))
  plt.plot(range(100))
  fig.savefig(run / "a.png", dpi=150)
  assert results.publish("a", str(run))
  assert json.loads((tmp_path / "docs/reports/a.json").read_text()) == REPORT
  from PIL import Image
  img = Image.open(tmp_path / "docs/figures/a.png")
  assert img.width <= results.MAX_WIDTH
  assert (tmp_path / "docs/figures/a.png").stat().st_size <= results.MAX_BYTES
