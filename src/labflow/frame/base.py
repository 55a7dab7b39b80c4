"""What every lab shares: its context, tracked training of one variant, and the comparison.

A lab module only says what is special about it (data preparation, the model, the
loss, the figures); this module does the bookkeeping the same way for all of them:
checkpoints that resume after a crash, the MLflow child run, the DVC metrics and
plots files, and the parent run that nests the variants of one comparison.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from labflow.frame import paths, timing
from labflow.frame.config import Params, section_dict
from labflow.tracking import dvc_files
from labflow.tracking.lineage import TEST_CONTEXTS, TRAIN_CONTEXTS
from labflow.tracking.tags import run_tags, stable_hash
from labflow.train import Checkpoint, FitResult, TensorBatches, distributed, fit, setup_torch

Figures = Mapping[str, Any]  # file stem -> matplotlib Figure


@dataclass
class LabContext:
    """Everything a lab function needs, resolved once per stage."""

    lab_id: str
    params: Params
    progress: bool = True
    # The training seed of a train stage (one of ``params.seeds``); None elsewhere, where
    # ``seed`` is the data seed and a variant's results are those of that seed's run.
    train_seed: int | None = None
    _device: torch.device | None = field(default=None, repr=False)
    _data_splits: list | None = field(default=None, repr=False)

    @property
    def cfg(self):
        return self.params.lab(self.lab_id)

    @property
    def seed(self) -> int:
        return self.params.seed if self.train_seed is None else self.train_seed

    @property
    def seeds(self) -> list[int]:
        """Every training seed, the primary one (``params.seed``, whose run later labs read) first."""
        return [self.params.seed, *(s for s in self.params.seeds if s != self.params.seed)]

    @property
    def device(self) -> torch.device:
        if self._device is None:
            p = self.params
            self._device = setup_torch(seed=self.seed, device=p.device, threads=p.threads, deterministic=p.deterministic)
        return self._device

    # -- places
    @property
    def processed_dir(self) -> Path:
        from labflow.labs import data_from

        return paths.processed_dir(data_from(self.lab_id) or self.lab_id)

    def model_dir(self, variant: str, seed: int | None = None) -> Path:
        return paths.model_dir(self.lab_id, variant, self.seed if seed is None else seed)

    def results_dir(self, variant: str | None = None, seed: int | None = None) -> Path:
        if variant is None:
            return paths.results_dir(self.lab_id)
        return paths.results_dir(self.lab_id, variant, self.seed if seed is None else seed)

    def checkpoint_dir(self, variant: str) -> Path:
        return paths.repo_root() / "checkpoints" / self.lab_id / variant / paths.seed_folder(self.seed)

    # -- identities, for tags and checkpoint fingerprints
    def params_hash(self, variant: str | None = None) -> str:
        section = section_dict(self.params, self.lab_id)
        if variant is not None and variant in section["variants"]:
            section = {k: v for k, v in section.items() if k != "variants"} | {"variant": section["variants"][variant]}
        elif variant is not None:  # a lab's shared model (labs.SHARED_MODEL): what every variant uses
            section = {k: v for k, v in section.items() if k != "variants"}
        return stable_hash({"profile": self.params.profile, "seed": self.params.seed, "train_seed": self.seed,
                            "section": section})

    @cached_property
    def data_hash(self) -> str:
        from labflow.data.manifest import manifest_hash

        return manifest_hash(self.processed_dir)

    @cached_property
    def code_hash(self) -> str:
        return code_hash(self.lab_id)

    def tags(self, stage: str, variant: str | None = None) -> dict[str, str]:
        return run_tags(
            lab=self.lab_id,
            stage=stage,
            params_hash=self.params_hash(variant),
            data_hash=self.data_hash,
            profile=self.params.profile,
            variant=variant,
            seed=self.seed if variant is not None else None,
        )

    def data_splits(self, commit: str) -> list:
        """The processed data's splits as MLflow dataset inputs (all contexts), built once per stage:
        building them reads the lab's dvc.lock."""
        if self._data_splits is None:
            from labflow.tracking import lineage

            self._data_splits = lineage.split_inputs(self.processed_dir, contexts=lineage.ALL_CONTEXTS, commit=commit,
                                                     fallback_digest=self.data_hash)
        return self._data_splits

    def variant_cfg(self, variant: str):
        variants = self.cfg.variants
        if variant not in variants:
            raise KeyError(
                f"{self.lab_id} has no variant '{variant}'; params.yaml lists: {', '.join(variants)}"
            )
        return variants[variant]


def code_hash(lab_id: str, root: Path | None = None) -> str:
    """sha256 of the code the lab's train stage runs, for the checkpoint fingerprint.

    Without it a resume after an edit of the model code either crashes in
    ``load_state_dict`` or silently continues weights the old code made. The files are the
    code deps (under ``src/`` or ``stages/``; a folder means every ``*.py`` in it) of the
    ``train`` stage in ``root``/labs/<lab>/dvc.yaml: what makes DVC rerun the stage. Without
    dvc.yaml or that stage (a test's bare folder), every ``*.py`` of the installed labflow
    package. Each file counts with its path and bytes; it takes a few milliseconds.
    """
    root = paths.repo_root() if root is None else root
    files = _train_stage_code_files(root, lab_id)
    if files is None:
        package = Path(__file__).resolve().parents[1]
        root, files = package.parent, sorted(package.rglob("*.py"))
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() if file.is_file() else b"(missing)")
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _train_stage_code_files(root: Path, lab_id: str) -> list[Path] | None:
    """The code files (sorted) among the deps of ``train`` in ``root``/labs/<lab>/dvc.yaml; None without one."""
    import yaml

    try:
        text = paths.lab_pipeline(lab_id, root).read_text()
        stages = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)).get("stages") or {}
        deps = stages["train"].get("deps") or []
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError):
        return None
    files: set[Path] = set()
    for dep in deps:
        if not isinstance(dep, str) or not dep.startswith(("src/", "stages/")):
            continue
        path = root / dep
        files.update(path.rglob("*.py") if path.is_dir() else [path])
    return sorted(files)


def small_model_threads(ctx: LabContext) -> None:
    """One CPU thread for a lab whose model is tiny (tabular MLPs), unless params.yaml sets ``threads``.

    Matrices of a few thousand numbers gain nothing from intra-op threads, and on a
    busy machine the threads' synchronisation costs more than the work: 750 Adam steps
    of a 7-64-2 MLP took 0.44 s on one thread and 5.3 s on two with the other core busy.
    """
    if ctx.params.threads == 0 and ctx.device.type == "cpu":
        torch.set_num_threads(1)


# --------------------------------------------------------------------------- tracking switch


class _NullRun:
    """Stands in for an MLflow run when ``tracking.enabled`` is false."""

    run_id = None

    def __getattr__(self, name):
        return lambda *a, **k: None


@contextlib.contextmanager
def _run(ctx: LabContext, *, run_name: str, tags: dict, resume_run_id=None, stale_run_id=None) -> Iterator[Any]:
    tracking = ctx.params.tracking
    if not tracking.enabled or not distributed.is_main():  # under torchrun only rank 0 logs
        yield _NullRun()
        return
    from labflow.tracking import runs

    runs.connect(tracking.server_timeout_s)
    with runs.open_run(
        prefix=tracking.experiment_prefix,
        lab=ctx.lab_id,
        run_name=run_name,
        tags=tags,
        resume_run_id=resume_run_id,
        stale_run_id=stale_run_id,
        system_metrics=tracking.system_metrics,
    ) as run:
        yield run


def _log_data_inputs(ctx: LabContext, run, tags: Mapping[str, str], contexts: tuple[str, ...]) -> None:
    """The processed data's splits as MLflow datasets of the run, digest = their DVC hash."""
    if run.run_id:
        run.log_inputs(_splits_in(ctx, tags, contexts))


def _splits_in(ctx: LabContext, tags: Mapping[str, str], contexts: tuple[str, ...]) -> list:
    from labflow.tracking import lineage

    return [i for i in ctx.data_splits(tags.get("git.commit", "none")) if lineage.context_of(i) in contexts]


def tracked_run(ctx: LabContext, *, run_name: str, tags: dict, stale_run_id: str | None = None):
    """An MLflow run of the lab's experiment (a stand-in when tracking is off), for a stage that is
    neither a training nor a comparison (lab 25's decode stages)."""
    return _run(ctx, run_name=run_name, tags=tags, stale_run_id=stale_run_id)


# --------------------------------------------------------------------------- one variant


@dataclass
class VariantResult:
    fit: FitResult
    metrics: dict[str, float]
    run_id: str | None
    model: Any = None  # labflow.tracking.runs.LoggedModel, when the model was logged


def train_variant(
    ctx: LabContext,
    variant: str,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: TensorBatches,
    loss_fn=None,
    epochs: int,
    evaluate: Callable[[nn.Module], dict[str, float]] | None,
    final_metrics: Callable[[nn.Module, FitResult], dict[str, float]],
    figures: Callable[[nn.Module, FitResult], Figures] | None = None,
    callbacks: tuple = (),
    run_params: Mapping | None = None,
    model_info: Mapping | None = None,
    history_extra: Mapping[str, list[dict]] | None = None,
    artifacts: Mapping[str, Path] | None = None,
    registered_model_name: str | None = None,
    step_fn=None,
    input_example: torch.Tensor | None = None,
) -> VariantResult:
    """Train one variant with checkpoints and tracking; write its model, metrics and plots files.

    ``loss_fn`` or ``step_fn`` as in :func:`labflow.train.fit` (a GAN passes ``step_fn`` and an
    ``Optimizers`` as ``optimizer``). Under torchrun every rank trains; rank 0 alone opens the
    MLflow run and writes checkpoints, the model and the DVC files.

    ``artifacts`` maps an artifact folder to a file written during training (e.g. the best
    checkpoint), logged to the run once training is done; ``registered_model_name``
    registers the logged model in the MLflow model registry (a new version per run).
    ``input_example``: a batch of 2 the model's forward takes, for labs whose training batches
    are not the model's input (indices, pre-computed features); else the batches' first tensor.
    """
    from labflow.plots import figures as figs

    fingerprint = f"{ctx.params_hash(variant)}-{ctx.data_hash}-{ctx.code_hash}"
    ckpt_dir = ctx.checkpoint_dir(variant)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    run_file = ckpt_dir / "run.json"
    prior = _read_run_file(run_file)
    checkpoint = Checkpoint(ckpt_dir / "last.pt", fingerprint)
    resumable = checkpoint.resumable(model, optimizer)  # its decision is reused by fit
    # The primary seed's run keeps the variant's name; the others say their seed.
    run_name = variant if ctx.seed == ctx.params.seed else f"{variant} seed {ctx.seed}"
    tags = ctx.tags("train", variant)
    with _run(
        ctx,
        run_name=run_name,
        tags=tags,
        resume_run_id=prior.get("run_id") if resumable and prior.get("fingerprint") == fingerprint else None,
        stale_run_id=prior.get("run_id"),
    ) as run:
        if run.run_id:
            dvc_files.write_metrics(run_file, {"run_id": run.run_id, "fingerprint": fingerprint})
        run.log_params(
            {"profile": ctx.params.profile, "seed": ctx.seed, "variant": variant, **(run_params or {})}
        )
        _log_data_inputs(ctx, run, tags, TRAIN_CONTEXTS)
        from labflow.tracking.callbacks import MlflowEpochLogger

        loggers = (MlflowEpochLogger(run),) if run.run_id else ()
        from labflow.train.loop import import_optimizer_machinery

        import_optimizer_machinery()  # an import, not work
        with timing.work():
            result = fit(
                model,
                optimizer,
                batches,
                loss_fn,
                step_fn=step_fn,
                epochs=epochs,
                evaluate=evaluate,
                callbacks=(*callbacks, *loggers, checkpoint),
                progress=ctx.progress,
                desc=f"{ctx.lab_id}/{variant}" + (f"/seed{ctx.seed}" if ctx.seed != ctx.params.seed else ""),
            )
            if not distributed.is_main():  # rank 0 writes the model, the metrics and the figures
                return VariantResult(result, {}, None)
            final = final_metrics(model, result)
        metrics = {
            **final,
            "epochs_run": result.epochs_run,
            "updates": result.updates,
            "train_seconds": round(result.train_seconds, 3),
        }
        _save_model(ctx.model_dir(variant) / "model.pt", model, model_info or {})
        out = ctx.results_dir(variant)
        dvc_files.write_rows(out / "history.csv", result.history)
        for name, rows in (history_extra or {}).items():
            dvc_files.write_rows(out / f"{name}.csv", rows)
        dvc_files.write_metrics_and_timings(out, metrics)
        variant_figures = {"learning_curves": _learning_curves(result.history, variant)}
        variant_figures.update(figures(model, result) if figures else {})
        for name, fig in variant_figures.items():
            # Rendered once: the PNG that DVC tracks is the one MLflow stores.
            run.log_artifact(figs.save(fig, out / "figures" / f"{name}.png"), "figures")
            figs.close(fig)
        for artifact_path, file in (artifacts or {}).items():
            if Path(file).exists():
                run.log_artifact(Path(file), artifact_path)
        logged = None
        if ctx.params.tracking.log_models and run.run_id:
            model = model.cpu().eval()
            example, why_not = _input_example(model, batches, input_example)
            logged = run.log_model(model, input_example=example, no_example_reason=why_not, step=result.epochs_run,
                                   registered_model_name=registered_model_name)
        # Final metrics at the last epoch's step, linked to the logged model (the Models tab ranks
        # by them); those measured on the test split name it as their dataset.
        model_id = logged.model_id if logged else None
        run.log_metrics({f"final_{k}": v for k, v in metrics.items() if not k.startswith("test")}
                        | {"work_seconds": timing.work_seconds()}, step=result.epochs_run, model_id=model_id)
        run.log_metrics({f"final_{k}": v for k, v in metrics.items() if k.startswith("test")},
                        step=result.epochs_run, dataset=_test_dataset(ctx, tags), model_id=model_id)
        dvc_files.write_metrics(out / "run.json", {"run_id": run.run_id, "variant": variant, "seed": ctx.seed,
                                                   **({"model_uri": logged.uri, "model_format": logged.format}
                                                      if logged else {})})
    return VariantResult(result, metrics, run.run_id, logged)


def _input_example(model: nn.Module, batches, given: torch.Tensor | None) -> tuple[torch.Tensor | None, str]:
    """(two rows the model's forward takes and answers with one tensor, "") or (None, why not).

    Given by the lab, or the first tensor of its training batches: a classifier, a regressor, a
    UNet take one; seq2seq models (source and target), detectors (images and boxes), a GAN's pair
    of networks and a VAE (three outputs) do not."""
    if given is not None:
        example = given[:2].detach().cpu()
    else:
        tensors = getattr(batches, "tensors", None)
        if not tensors or not isinstance(tensors[0], torch.Tensor):
            return None, f"the training batches ({type(batches).__name__}) are not one input tensor"
        example = tensors[0][:2].detach().cpu()
    if len(example) < 2:
        return None, "fewer than 2 training rows (a dynamic batch size needs 2)"
    try:
        with torch.no_grad():
            out = model(example)
    except Exception as error:  # noqa: BLE001 - any failure means "not called this way"
        return None, f"forward(one batch tensor) fails: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
    if not isinstance(out, torch.Tensor):
        return None, f"forward returns {type(out).__name__}, not one tensor"
    return example, ""


def _test_dataset(ctx: LabContext, tags: Mapping[str, str]) -> tuple[str, str] | None:
    """(name, digest) of the lab's test split as logged by :mod:`labflow.tracking.lineage`."""
    found = _splits_in(ctx, tags, TEST_CONTEXTS)
    return (found[0].dataset.name, found[0].dataset.digest) if found else None


def _learning_curves(history: list[dict], variant: str):
    """Every loss-like and accuracy-like column of the history against epochs."""
    from labflow.plots import figures as figs

    epochs = [row["epoch"] for row in history]
    losses = {k: (epochs, [r[k] for r in history]) for k in history[0] if k.endswith("loss")}
    return figs.curves(losses, xlabel="epoch", ylabel="loss", title=f"{variant}: losses per epoch")


def _read_run_file(path: Path) -> dict:
    """The MLflow run a checkpoint belongs to (``run.json`` beside it); {} when there is none or it
    is unreadable (a kill mid-write, by a version that wrote it in place), with one line saying so."""
    if not path.exists():
        return {}
    try:
        prior = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        problem = f"unreadable ({err})"
    else:
        if isinstance(prior, dict):
            return prior
        problem = "not a JSON object"
    if distributed.is_main():
        print(f"[labflow] ignoring {path}: {problem}; its MLflow run will not be resumed")
    return {}


def _save_model(path: Path, model: nn.Module, info: Mapping) -> None:
    """``{"state_dict", "info"}``, with ``info`` as plain values: readers load it with weights_only=True."""
    from labflow.train.callbacks import atomic_torch_save, plain

    atomic_torch_save({"state_dict": model.state_dict(), "info": plain(dict(info))}, path)


# --------------------------------------------------------------------------- the comparison


def variant_results(ctx: LabContext) -> dict[str, dict[str, Any]]:
    """Each variant's metrics, history and run id, as written by its train stages.

    The top level is the primary seed's run (what a lab's own table and figures show);
    ``seeds`` holds every training seed's metrics and history, for the seed bands."""
    out = {}
    for variant in ctx.cfg.variants:
        runs = {seed: _seed_run(ctx, variant, seed) for seed in ctx.seeds}
        out[variant] = {**runs[ctx.params.seed], "seeds": runs}
    return out


def _seed_run(ctx: LabContext, variant: str, seed: int) -> dict[str, Any]:
    folder = ctx.results_dir(variant, seed)
    if not (folder / "metrics.json").exists():
        raise FileNotFoundError(
            f"{folder / 'metrics.json'} is missing: run the train stage first "
            f"(`dvc repro labs/{ctx.lab_id}/dvc.yaml:train@{variant}-{seed}`)"
        )
    return {
        "metrics": dvc_files.read_metrics_and_timings(folder),
        "history": dvc_files.read_rows(folder / "history.csv"),
        "run_id": dvc_files.read_metrics(folder / "run.json").get("run_id"),
        "folder": folder,
    }


def publish_comparison(
    ctx: LabContext,
    results: Mapping[str, Mapping[str, Any]],
    *,
    table: list[dict[str, Any]],
    figures: Figures,
    summary: Mapping[str, Any] | None = None,
    extra_children: Sequence[str] = (),
) -> None:
    """Write the lab's comparison (DVC metrics, table, figures) and its MLflow parent run.

    ``extra_children``: run ids nested under the parent besides the variants' (a shared model's
    training runs, labs.SHARED_MODEL)."""
    with timing.not_work():
        _publish(ctx, results, table=table, figures=figures, summary=summary, extra_children=extra_children)


def _publish(ctx, results, *, table, figures, summary, extra_children=()) -> None:
    from labflow.labs import lab_module
    from labflow.compare import lessons, seed_bands
    from labflow.plots import figures as figs

    out = ctx.results_dir()
    metrics = {variant: r["metrics"] for variant, r in results.items()}
    if summary:
        metrics["summary"] = dict(summary)
    # Seed bands: every training seed's headline metrics, the mean ± std and which gaps are real.
    module = lab_module(ctx.lab_id)
    first = next(iter(results.values()), {}).get("metrics", {})
    headline = seed_bands.headline_metrics(module, first)
    band = seed_bands.band_rows(results, headline)
    verdicts = seed_bands.verdict_rows(results, headline)
    seeds_md = seed_bands.markdown(band, verdicts, ctx.seeds)
    if len(ctx.seeds) > 1:
        metrics["seed_bands"] = seed_bands.summary_metrics(band)
        # A lab that trains nothing (lab 11) has no training curves to band.
        column = seed_bands.band_curve(module, next(iter(results.values()), {}).get("history") or [])
        if column:
            figures = {**figures, "seed_bands": seed_bands.band_figure(
                results, column, f"{ctx.lab_id}: {column}, mean and min-max over seeds {', '.join(map(str, ctx.seeds))}")}
    # The course's lessons: each claim scored on these results.
    no_claim, scored = _lessons(ctx, results, summary)
    lessons_md = lessons.markdown(ctx.lab_id, scored, ctx.seeds, no_claim)
    if scored:
        metrics["lessons"] = lessons.metrics(scored)
    dvc_files.write_metrics_and_timings(out, metrics)
    dvc_files.write_rows(out / "lessons.csv", lessons.rows(scored))
    (out / "lessons.md").write_text(lessons_md)
    dvc_files.write_metrics(out / "lessons.json", lessons.summary_record(ctx.lab_id, scored, ctx.seeds, no_claim))
    dvc_files.write_rows(out / "comparison.csv", table)
    dvc_files.write_rows(out / "seeds.csv", [*band, *verdicts])
    (out / "seeds.md").write_text(seeds_md)
    markdown = _markdown_table(table)
    (out / "comparison.md").write_text(markdown)
    tags = ctx.tags("evaluate") | {"labflow.role": "comparison"}
    with _run(ctx, run_name=f"{ctx.lab_id} comparison", tags=tags) as run:
        run.log_params({"profile": ctx.params.profile, "seed": ctx.seed, "seeds": ",".join(map(str, ctx.seeds)),
                        "variants": ",".join(results)})
        _log_data_inputs(ctx, run, tags, TEST_CONTEXTS)
        for variant, r in results.items():
            run.log_metrics({f"{variant}.{k}": v for k, v in r["metrics"].items()})
        for variant, values in metrics.get("seed_bands", {}).items():
            run.log_metrics({f"{variant}.{k}": v for k, v in values.items()})
        for name, fig in figures.items():
            # Rendered once: the PNG that DVC tracks is the one MLflow stores.
            run.log_artifact(figs.save(fig, out / "figures" / f"{name}.png"), "figures")
            figs.close(fig)
        run.log_metrics({"work_seconds": timing.work_seconds()})
        children = [(variant, seed, seed_run["run_id"]) for variant, r in results.items()
                    for seed, seed_run in (r.get("seeds") or {ctx.seed: r}).items() if seed_run.get("run_id")]
        children += [("(shared model)", "", c) for c in extra_children if c]
        compared, nested = [], []
        if run.run_id and children:
            from labflow.tracking.runs import nest_unclaimed

            compared, nested = nest_unclaimed(run.run_id, [c for _, _, c in children])
            run.set_tags({"labflow.child_run_ids": ",".join(compared), "labflow.nested_run_ids": ",".join(nested)})
        # The verdicts are the run's description: the first thing its page shows; then the table
        # and a link to every run compared (those an earlier comparison nests included).
        run.set_tags({"mlflow.note.content": lessons.note(ctx.lab_id, scored, ctx.seeds, no_claim) + "\n" + markdown
                      + _compared_runs_md(run, children, compared, nested)})
        run.log_metrics({f"lesson.{k}": v for k, v in lessons.metrics(scored).items()})
        run.log_text(lessons_md, "lessons.md")
        run.log_text(markdown, "comparison.md")
        run.log_text(seeds_md, "seeds.md")
        run.log_artifact(out / "comparison.csv")
    print(markdown)
    if len(ctx.seeds) > 1:
        print(seeds_md)
    print(lessons_md)


def _compared_runs_md(run, children: list[tuple], compared: list[str], nested: list[str]) -> str:
    """The runs this comparison read, each a link to its page; those nested under an earlier
    comparison (not retrained since) say so."""
    if not compared:
        return ""
    experiment = run.experiment_id
    lines = ["", "**Runs compared**", "", "| variant | seed | run | nested here |", "|---|---|---|---|"]
    for variant, seed, run_id in children:
        if run_id in compared:
            here = "yes" if run_id in nested else "no: under an earlier comparison"
            lines.append(f"| {variant} | {seed} | [{run_id[:8]}](#/experiments/{experiment}/runs/{run_id}) | {here} |")
    return "\n".join(lines) + "\n"


def _lessons(ctx: LabContext, results, summary):
    """(no-claim reason, scored claims) from the lab's ``lessons.py``."""
    from labflow.compare import lessons
    from labflow.labs import lab_lessons

    module = lab_lessons(ctx.lab_id)
    claims = tuple(getattr(module, "CLAIMS", ()) or ())
    no_claim = getattr(module, "NO_CLAIM", "") if module else "the lab has no lessons.py"
    return no_claim, lessons.score(claims, results, summary or {}, ctx.seeds)


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def series(results: Mapping[str, Mapping[str, Any]], x: str, y: str, source: str = "history") -> dict:
    """{variant: (xs, ys)} from each variant's history rows, for figures.curves."""
    out = {}
    for variant, r in results.items():
        rows = [row for row in r[source] if row.get(y) is not None]
        out[variant] = ([row[x] for row in rows], [row[y] for row in rows])
    return out
