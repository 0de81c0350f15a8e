"""Report: Pareto fronts of the chosen objectives (`fronts`), their figures (`plots`), and the files of a search run
(`reports`: results.csv, pareto.csv/.png, hypervolume.csv/.png)."""

from nasengine.reporting.reports import write_reports

__all__ = ["write_reports"]
