"""The live views: meta-loss, adaptation curves, rollouts.  They only draw what the trainer emitted.

Items are created once and updated with ``setData``; view ranges are set by hand at most a few times a
second (auto-ranging on every update is most of the cost of a live plot).  Axes choose a few labels that
never overlap (whole numbers on counts), legends sit in a row outside the plot area, and the arithmetic
behind them is Qt-free (:mod:`workbench.core.plotting`).

Modules: ``common`` (colours, axes, legends, export), ``meta_loss``, ``adaptation``, ``renderers`` and
``frames`` (the rollout renderers), ``rollouts`` (the rollout view and its registry of renderers).
"""
from workbench.core.plotting import GrowingSeries, PeakEnvelope

from .adaptation import PERCENT, AdaptationPlot, heldout_label
from .common import (PALETTE, LineLabels, PanelTitles, RowLegend, TidyAxis, cache_static_parts, export_plot_item,
                     fixed_plot, make_plot, plot_item, row_legend, scrolling_column)
from .frames import FramesRenderer
from .meta_loss import CURVE_BUCKETS, MARKER_BUCKETS, RANGE_EVERY, MetaLossPlot
from .renderers import BanditRenderer, RegressionRenderer, TrajectoryRenderer, VisitationRenderer, _step_color
from .rollouts import RENDERERS, RolloutView, caption

__all__ = ["AdaptationPlot", "BanditRenderer", "CURVE_BUCKETS", "FramesRenderer", "GrowingSeries", "LineLabels",
           "MARKER_BUCKETS", "MetaLossPlot", "PALETTE", "PanelTitles", "PERCENT", "PeakEnvelope", "RANGE_EVERY",
           "RENDERERS", "RegressionRenderer", "RolloutView", "RowLegend", "TidyAxis", "TrajectoryRenderer",
           "VisitationRenderer", "cache_static_parts", "caption", "export_plot_item", "fixed_plot", "heldout_label",
           "make_plot", "plot_item", "row_legend", "scrolling_column", "_step_color"]
