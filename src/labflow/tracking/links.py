"""Addresses that open the MLflow UI on a lab's runs, not on its GenAI start page.

MLflow 3 opens an experiment in its GenAI mode (traces, prompts); the runs table is behind
the "Model training" switch. The query ``workflowType=machine_learning`` selects that mode
from the address itself (checked in headless Chromium on a fresh profile; the experiment
tag ``mlflow.experimentKind`` alone did not change the start page).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

MODEL_TRAINING = "workflowType=machine_learning"
DEFAULT_UI = "http://127.0.0.1:5000"


def experiment_url(ui: str, experiment_id: str) -> str:
    return f"{ui.rstrip('/')}/#/experiments/{quote(str(experiment_id))}?{MODEL_TRAINING}"


def run_url(ui: str, experiment_id: str, run_id: str) -> str:
    return f"{ui.rstrip('/')}/#/experiments/{quote(str(experiment_id))}/runs/{quote(run_id)}?{MODEL_TRAINING}"


@dataclass(frozen=True)
class LabRuns:
    """One lab's experiment in the store, and the runs behind its current results."""

    lab_id: str
    experiment_id: str | None
    comparison_run_id: str | None = None
    variant_run_ids: tuple[tuple[str, str], ...] = ()  # (variant, run id)


def find_experiments(client, names: dict[str, str]) -> dict[str, str | None]:
    """{lab_id: experiment id or None} for ``names`` = {lab_id: experiment name}."""
    out = {}
    for lab_id, name in names.items():
        exp = client.get_experiment_by_name(name)
        out[lab_id] = exp.experiment_id if exp is not None and exp.lifecycle_stage == "active" else None
    return out


def comparison_run_for(client, experiment_id: str, variant_run_ids: list[str]) -> str | None:
    """The comparison (parent) run that nests exactly these variant runs, else the newest one.

    ``dvc exp`` leaves many comparison runs in one experiment; the one whose children are the
    workspace's variant runs is the one that produced the results on disk."""
    runs = client.search_runs(
        [experiment_id],
        filter_string="tags.`labflow.role` = 'comparison'",
        order_by=["attributes.start_time DESC"],
        max_results=200,
    )
    wanted = set(variant_run_ids)
    for run in runs:
        children = set(filter(None, run.data.tags.get("labflow.child_run_ids", "").split(",")))
        if wanted and wanted <= children:
            return run.info.run_id
    return runs[0].info.run_id if runs else None
