"""What the Runs panel shows, without Qt: rows, series across seeds, plot ranges, CSV, cache, delete plan."""
import csv
import dataclasses
import datetime as dt
import io
import os
from pathlib import Path

import numpy as np
import pytest

from workbench.core.stats import ema_tensorboard
from workbench.services import run_series as rs
from workbench.services.runs import Curves, RunError, RunInfo, aggregate

UTC = dt.timezone.utc


def curves(train, adaptation=(1.0, 0.5, 0.4), its=None, metric="loss"):
    train = np.asarray(train, dtype=np.float64)
    its = np.arange(1, len(train) + 1) if its is None else np.asarray(its)
    ad = np.asarray(adaptation, dtype=np.float64)
    return Curves(its, train, metric, {metric: train}, np.array([len(train)]), ad[:1], ad[-1:],
                  np.arange(len(ad)), ad[None, :], np.zeros((1, len(ad))), "mse")


def run(name, seed=0, key="g", preset="maml-sinusoid", config=None, status="finished", **kw):
    return RunInfo(Path("/runs") / name, name, preset=preset, family="sinusoid", algorithm="maml", seed=seed,
                   status=status, metric="mse", group_key=key, config=config, **kw)


# -- rows ------------------------------------------------------------------------------------------------
def test_rows_say_what_a_run_is_and_sort_numbers_as_numbers():
    good = run("a", seed=10, iterations=30, total_iterations=30, final=0.5123,
               date=dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    texts = dict(zip(rs.COLUMNS, rs.row_texts(good)))
    assert texts["Iterations"] == "30 / 30" and texts["Final"] == "mse 0.512" and texts["Seed"] == "10"
    bad = RunInfo(Path("/runs/b"), "b", error="malformed TOML")
    assert rs.row_texts(bad)[rs.COL_FINAL] == "malformed TOML" and rs.status_text(bad) == "unreadable"
    assert "unreadable: malformed TOML" in rs.run_tooltip(bad)
    nine, none = run("c", seed=9), run("d", seed=None)
    by_seed = sorted([good, none, nine], key=lambda r: rs.sort_keys(r)[rs.COL_SEED])
    assert [r.name for r in by_seed] == ["c", "a", "d"]  # 9 < 10 (not "10" < "9"); missing last
    older = run("e", date=dt.datetime(2023, 1, 1, tzinfo=UTC))
    assert rs.sort_keys(good)[rs.COL_DATE] < rs.sort_keys(older)[rs.COL_DATE]  # ascending is newest first
    assert rs.sort_keys(bad)[rs.COL_FINAL] > rs.sort_keys(good)[rs.COL_FINAL]


def test_shorten_cuts_the_middle_of_long_names():
    name = "x" * 100 + "END"
    assert rs.shorten("short") == "short"
    out = rs.shorten(name, 21)
    assert len(out) == 21 and out.startswith("xxx") and out.endswith("END") and "…" in out


# -- series ----------------------------------------------------------------------------------------------
def test_seeds_make_one_series_smoothed_before_the_mean():
    a, b, other = run("s0", 0), run("s1", 1), run("lr", 0, key="h")
    ca, cb, co = curves([4.0, 2.0, 1.0]), curves([2.0, 1.0, 3.0], (0.8, 0.6, 0.2)), curves([1.0, 1.0, 0.5])
    loaded = [(b, cb), (other, co), (a, ca)]
    out = rs.make_series(loaded, group=True, weight=0.5, color=lambda i: f"c{i}")
    assert [s.label for s in out] == ["maml-sinusoid (n=2 seeds)", "lr"]
    assert [s.color for s in out] == ["c0", "c1"] and [r.name for r in out[0].runs] == ["s0", "s1"]
    g = out[0]
    assert g.grouped and not out[1].grouped and g.train_metric == "loss"
    np.testing.assert_allclose(g.train.mean, [3.0, 1.5, 2.0])
    expected = np.mean([ema_tensorboard(ca.train, 0.5), ema_tensorboard(cb.train, 0.5)], axis=0)
    np.testing.assert_allclose(g.smoothed.mean, expected)
    np.testing.assert_allclose(g.adaptation.mean, [0.9, 0.55, 0.3])
    lo, hi = g.band(g.smoothed, rs.BANDS[0])
    smoothed = [dataclasses.replace(c, train=ema_tensorboard(c.train, 0.5)) for c in (ca, cb)]
    np.testing.assert_allclose(hi, aggregate(smoothed, "train").high)
    assert np.all(hi > lo)
    np.testing.assert_allclose(g.band(g.train, rs.BANDS[1])[0], [2.0, 1.0, 1.0])
    assert out[1].band(out[1].train, rs.BANDS[0]) is None
    # weight 0: the drawn curve is the logged one; ungrouped: one series per run, named by the run
    raw = rs.make_series(loaded, group=False, weight=0.0)
    assert [s.label for s in raw] == ["s1", "lr", "s0"]
    np.testing.assert_allclose(raw[0].smoothed.mean, cb.train)


def test_labels_tell_groups_of_one_preset_apart_and_reruns_from_seeds():
    c = curves([1.0, 2.0])
    lo = {"algorithm": {"inner_lr": 0.01}, "run": {"seed": 0}}
    hi = {"algorithm": {"inner_lr": 0.02}, "run": {"seed": 0}}
    buckets = [[(run("a0", 0, config=lo), c), (run("a1", 1, config=lo), c)],
               [(run("b0", 0, config=hi), c), (run("b0-again", 0, config=hi), c)]]
    assert rs.series_labels(buckets) == ["maml-sinusoid inner_lr=0.01 (n=2 seeds)",
                                         "maml-sinusoid inner_lr=0.02 (n=2 runs, 1 seeds)"]
    assert rs.config_differences([lo, hi]) == ["inner_lr=0.01", "inner_lr=0.02"]  # the seed is not a setting


def test_losses_and_returns_are_not_overlaid():
    loss, ret = run("loss"), run("ret")
    ret.metric = "return"
    kept, kind, note = rs.split_by_kind([(loss, curves([1.0])), (ret, curves([1.0], metric="return"))])
    assert [r.name for r, _ in kept] == ["loss"] and kind == "loss" and "left out: ret" in note
    assert rs.split_by_kind([]) == ([], None, "")
    assert rs.split_by_kind([(ret, curves([1.0], metric="return"))])[1] == "return"


def test_view_range_fits_what_is_drawn_with_room_for_the_legend():
    drawn = [(np.array([1.0, 10.0]), np.array([0.1, 10.0]))]
    x0, x1, y0, y1 = rs.view_range(drawn, log=True, rows=1)
    assert (x0, x1, y0) == (1.0, 10.0, -1.0) and y1 == pytest.approx(1 + 2 * 0.12)
    x0, x1, y0, y1 = rs.view_range([(np.array([3.0]), np.array([2.0]))], log=False, rows=0)
    assert (x0, x1) == (2.5, 3.5) and y0 < 2.0 < y1  # a single point gets a visible span
    assert rs.view_range([], log=False, rows=0) is None
    assert rs.view_range([(np.array([1.0]), np.array([-1.0]))], log=True, rows=1) is None  # nothing > 0 on log


def test_a_band_reaching_zero_is_cut_on_a_log_axis():
    s = rs.make_series([(run("a", 0), curves([0.1, 1.0])), (run("b", 1), curves([0.3, 3.0]))])
    agg = s[0].train
    low = np.array([-1.0, 0.5])
    np.testing.assert_allclose(rs.band_on_log_axis(low, agg, 1e-3), [0.1, 0.5])
    assert rs.log_floor(s) == pytest.approx(min(s[0].smoothed.mean.min(), s[0].adaptation.mean.min()) / 10)
    assert rs.log_floor([]) == 1e-6
    assert rs.inner_steps(s) == [0, 1, 2]


def test_csv_has_the_drawn_data_and_empty_bands_for_single_runs():
    series = rs.make_series([(run("a", 0), curves([4.0, 2.0])), (run("b", 1), curves([2.0, 1.0])),
                             (run("solo", 0, key="h"), curves([1.0, 1.0]))], weight=0.0)
    rows = list(csv.DictReader(io.StringIO(rs.meta_loss_csv(series, rs.BANDS[1], 0.0))))
    group = [r for r in rows if r["series"] == "maml-sinusoid (n=2 seeds)"]
    assert [(r["iteration"], r["n"], r["mean"], r["low"], r["high"], r["band"]) for r in group] == [
        ("1", "2", "3.0", "2.0", "4.0", "min-max"), ("2", "2", "1.5", "1.0", "2.0", "min-max")]
    assert {r["low"] for r in rows if r["series"] == "solo"} == {""} and {r["metric"] for r in rows} == {"loss"}
    ad = list(csv.DictReader(io.StringIO(rs.adaptation_csv(series, rs.BANDS[0]))))
    assert [r["inner_step"] for r in ad] == ["0", "1", "2"] * 2 and {r["metric"] for r in ad} == {"mse"}
    assert {r["band"] for r in ad if r["series"] != "solo"} == {"ci95"}


# -- the folder ------------------------------------------------------------------------------------------
def test_curve_cache_rereads_only_a_changed_run(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    metrics = folder / "metrics.csv"
    metrics.write_text("iteration,elapsed,its_per_sec,loss\n1,0.1,10,0.5\n")
    info = RunInfo(folder, "r")
    cache = rs.CurveCache()
    first = cache.get(info)
    assert list(first.train) == [0.5] and cache.get(info) is first
    metrics.write_text("iteration,elapsed,its_per_sec,loss\n1,0.1,10,0.5\n2,0.2,10,0.25\n")
    os.utime(metrics, ns=(1, 1))  # a new mtime even on a coarse clock
    assert list(cache.get(info).train) == [0.5, 0.25]
    metrics.write_text("not,a,metrics,file\n")
    with pytest.raises(RunError, match="not a workbench metrics file"):
        cache.get(info)
    cache.forget(folder)
    cache.keep_only(set())
    with pytest.raises(RunError):
        cache.get(info)


def test_folder_snapshot_changes_with_the_folder(tmp_path):
    (tmp_path / "a").mkdir()
    listed = [RunInfo(tmp_path / "a", "a")]
    before = rs.folder_snapshot(tmp_path, listed)
    assert rs.folder_snapshot(tmp_path, listed) == before
    (tmp_path / "b").mkdir()
    assert rs.folder_snapshot(tmp_path, listed) != before
    assert rs.describe_folder(tmp_path / "nowhere", []) == (f"no runs yet in {tmp_path / 'nowhere'}", False)
    text, warn = rs.describe_folder(tmp_path, [listed[0], RunInfo(tmp_path / "b", "b", error="x")])
    assert text.startswith("2 runs, 1 unreadable") and not warn


def test_delete_plan_refuses_running_runs_and_names_the_rest():
    alive = run("alive", status="running", process_alive=True)
    elsewhere = run("elsewhere", status="running", process_alive=None)
    long = run("n" * 190)
    plan = rs.plan_delete([alive, elsewhere, long])
    assert plan.busy == [alive] and plan.todo == [elsewhere, long] and plan.unknown == [elsewhere]
    assert plan.refusals == ["alive: not deleted: it is still running; stop it first"]
    text = plan.question(Path("/runs"))
    assert text.startswith("Delete 2 runs") and "elsewhere (says running" in text and "Not deleted" in text
    assert "n" * 190 not in text and max(len(line) for line in text.splitlines()) < 120  # a long name is cut
    many = rs.plan_delete([run(f"r{i}") for i in range(rs.MAX_LISTED + 2)])
    assert "… and 2 more" in many.question(Path("/runs"))
