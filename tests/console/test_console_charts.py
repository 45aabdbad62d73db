"""Server-drawn SVG charts: the pure chart and series functions, and the pages that show them."""

import re

import numpy as np
import pytest
from django.urls import reverse

from batchjobs import charts
from tests import factories


def _accessible(svg: str, chart_id: str) -> None:
    assert svg.startswith("<svg")
    assert 'role="img"' in svg
    assert f'aria-labelledby="{chart_id}-title {chart_id}-desc"' in svg
    assert f'<title id="{chart_id}-title">' in svg and f'<desc id="{chart_id}-desc">' in svg


def test_grouped_bars_draw_two_bars_a_row_and_describe_them():
    svg = charts.grouped_bars(
        "m", "Metrics", [("precision_at_5", 0.12, 0.16), ("coverage", 0.9, None)], ("This version", "Baseline")
    )
    _accessible(svg, "m")
    assert svg.count("<rect") == 1 + 2 + 3  # the hatch pattern, two legend swatches, three measured bars
    assert "precision_at_5: This version 0.12, Baseline 0.16" in svg
    assert "not measured" in svg
    assert "Metric value (higher is better)" in svg


def test_bar_lengths_are_proportional():
    svg = charts.grouped_bars("m", "t", [("a", 1.0, 0.5)], ("x", "y"))
    widths = [float(w) for w in re.findall(r'<rect x="\d+" y="\d+" width="([\d.]+)" height="11"', svg)]
    assert widths[0] == pytest.approx(2 * widths[1])


def test_chart_text_is_escaped():
    svg = charts.grouped_bars("m", "<script>", [("<b>", 1.0, 1.0)], ("<i>", "y"))
    assert "<script>" not in svg and "<b>" not in svg and "&lt;b&gt;" in svg


def test_short_metric_names():
    assert charts.short_metric_name("normalized_discounted_cumulative_gain_at_10") == "NDCG @ 10"
    assert charts.short_metric_name("mean_reciprocal_rank_at_25") == "MRR @ 25"


def test_weekly_counts_fill_empty_weeks():
    week = charts.WEEK_SECONDS
    start = 1_700_000_000
    series = charts.weekly_counts(np.array([start, start + 10, start + 2 * week + 5]))
    assert [count for _, count in series] == [2, 0, 1]
    assert series[0][0] == "2023-11-14"
    assert charts.weekly_counts(np.array([], dtype=np.int64)) == []


def test_popularity_curve_ranks_items_by_count():
    assert charts.popularity_curve(np.array(["a", "b", "a", "c", "a", "b"], dtype=object)) == [3, 2, 1]
    assert charts.popularity_curve(np.array([], dtype=object)) == []


def test_area_line_and_log_curve_have_axes_and_labels():
    area = charts.area_line("w", "Interactions per week", [("2024-01-01", 3), ("2024-01-08", 7)], "Week", "Count")
    _accessible(area, "w")
    assert "<polygon" in area and "<polyline" in area
    assert ">Week</text>" in area and ">Count</text>" in area
    assert "highest 7 at 2024-01-08" in area
    curve = charts.log_curve("p", "Popularity", [1000, 100, 10, 1], "Rank", "Interactions (log scale)")
    _accessible(curve, "p")
    assert ">1,000</text>" in curve and "Log scale" in curve
    points = re.search(r'<polyline points="([^"]+)"', curve).group(1).split()
    ys = [float(p.split(",")[1]) for p in points]
    assert ys == sorted(ys)  # falling values draw lower and lower
    assert np.allclose(np.diff(ys), ys[1] - ys[0], atol=0.2)  # equal steps on a log scale


def test_log_curve_samples_long_series():
    curve = charts.log_curve("p", "t", list(range(100_000, 0, -1)), "x", "y")
    assert len(re.search(r'<polyline points="([^"]+)"', curve).group(1).split()) <= charts.WIDTH
    assert charts.log_curve("p", "t", [], "x", "y").count("<polyline") == 0


def test_the_solution_version_page_draws_metrics_against_the_baseline(signed_in, solution):
    version = factories.make_version(
        solution, metrics={"precision_at_5": 0.2, "coverage": 0.5}, baseline_metrics={"precision_at_5": 0.1}
    )
    url = reverse("batchjobs:solution_version_detail", args=[solution.dataset_group.pk, version.pk])
    html = signed_in.get(url).content.decode()
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img"' in html
    assert "Solution version metrics against the popularity baseline" in html
    assert 'role="progressbar"' in html


def test_the_overview_draws_interactions_over_time_and_item_popularity(signed_in, demo_world):
    group = demo_world["group"]
    html = signed_in.get(reverse("batchjobs:dataset_group_overview", args=[group.pk])).content.decode()
    assert "Interactions per week" in html and "Item popularity curve" in html
    assert html.count('role="img"') == 2
