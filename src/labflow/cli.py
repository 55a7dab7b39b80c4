"""The ``labflow`` command: list the labs, validate params, open the MLflow UI, write the report."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from labflow import paths


def _params():
    from labflow.config import load_params

    return load_params(paths.repo_root() / "params.yaml")


def cmd_list(args) -> int:
    """Labs, their variants, and the data each profile uses."""
    import yaml

    from labflow.config import PROFILES, parse_params
    from labflow.data.datasets import DATASETS
    from labflow.data.folder import USER_FOLDER_DATASETS
    from labflow.labs import LABS, data_lab, lab_module

    raw = yaml.safe_load((paths.repo_root() / "params.yaml").read_text())
    active = raw.get("profile", "quick")
    print(f"active profile: {active} (switch: dvc exp run -S profile=full)\n")
    per_profile = {profile: parse_params({**raw, "profile": profile}) for profile in PROFILES}
    for lab_id in LABS:
        module = lab_module(lab_id)
        variants = ", ".join(per_profile[active].lab(lab_id).variants)
        print(f"{lab_id}  {module.TITLE}\n    variants: {variants}")
        for profile, params in per_profile.items():
            # Labs that switch data set by profile name it in `<lab>.data.dataset`.
            # A lab that trains nothing (lab 11) uses the data of the lab whose models it reads.
            dataset = getattr(params.lab(data_lab(lab_id)).data, "dataset", None) or module.DATASETS[0]
            spec = USER_FOLDER_DATASETS.get(dataset) or DATASETS[dataset]
            print(f"    data ({profile:5}): {spec.describe(profile)}")
        print()
    return 0


def cmd_check(args) -> int:
    params = _params()
    print(f"params.yaml is valid (profile {params.profile})")
    return 0


def lab_addresses(ui: str) -> list[tuple[str, str]]:
    """(lab, address) for each lab with runs in the store: the runs table in Model training mode."""
    from labflow.labs import LABS
    from labflow.tracking import links
    from labflow.tracking.store import experiment_name, sqlite_path, tracking_uri

    uri = tracking_uri()
    if sqlite_path(uri) is not None and not sqlite_path(uri).exists():
        return []
    import mlflow

    prefix = _params().tracking.experiment_prefix
    client = mlflow.MlflowClient(tracking_uri=uri)
    ids = links.find_experiments(client, {lab: experiment_name(prefix, lab) for lab in LABS})
    return [(lab, links.experiment_url(ui, exp_id)) for lab, exp_id in ids.items() if exp_id is not None]


def cmd_ui(args) -> int:
    """Start the MLflow UI on the pipeline's own store, bound to loopback by default.

    It prints each lab's address first: MLflow 3 opens on its GenAI pages, and these
    open the lab's runs table in Model training mode instead."""
    from labflow.tracking.store import artifact_root, tracking_uri

    ui = f"http://{args.host}:{args.port}"
    addresses = lab_addresses(ui)
    if addresses:
        print("Each lab's runs (Model training mode):")
        for lab, address in addresses:
            print(f"  {lab}  {address}")
    else:
        print("No lab has runs in the store yet: run `dvc repro` first.")
    if args.links_only:
        return 0
    uri = tracking_uri()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri,
        "--default-artifact-root", artifact_root(),
        "--host", args.host, "--port", str(args.port), "--workers", "1",
    ]
    print(f"MLflow UI on {ui} (store: {uri}); Ctrl+C stops it", flush=True)
    os.execvpe(cmd[0], cmd, env)
    return 0  # not reached


def cmd_exp(args) -> int:
    """One lab's experiment history: commits and experiments x variants, headline metrics."""
    from labflow import exp_table
    from labflow.labs import LABS, lab_module, seed_bands

    lab = args.lab if args.lab in LABS else f"lab{args.lab.removeprefix('lab').zfill(2)}"
    if lab not in LABS:
        from labflow.config import ConfigError

        raise ConfigError(f"unknown lab '{args.lab}'; known labs: {', '.join(LABS)}")
    rows = exp_table.rows_for(exp_table.exp_show(args.all_commits), lab)
    sample = next((m for r in rows for v, m in r.metrics.items() if v not in ("summary", "seed_bands")
                   and isinstance(m, dict)), {})
    metrics = args.metric or seed_bands.headline_metrics(lab_module(lab), sample) or ["test_acc"]
    print("\n\n".join(exp_table.render(rows, lab, m, width=args.width) for m in metrics))
    return 0


def cmd_server(args) -> int:
    """The team's MLflow server on PostgreSQL (a private cluster under --data unless --db is given)."""
    from labflow.team.server import ServerError, start

    data = Path(args.data) if Path(args.data).is_absolute() else paths.repo_root() / args.data
    try:
        start(data=data, db_uri=args.db, host=args.host, port=args.port, auth=args.auth,
              allowed_hosts=args.allowed_hosts)
    except ServerError as err:
        print(f"labflow: error: {err}", file=sys.stderr)
        return 1
    return 0  # not reached: start() becomes the server


def cmd_report(args) -> int:
    """Write the offline report (static HTML) from the pipeline's outputs."""
    from labflow import paths
    from labflow.report.build import build_report

    root = paths.repo_root()
    out = Path(args.out) if Path(args.out).is_absolute() else root / args.out
    index = build_report(root, out, ui=args.ui, with_links=not args.no_links)
    print(f"report written: {index} (open it in a browser; it needs no network)")
    return 0


def cmd_runner(args) -> int:
    """The warm stage runner of this environment (see labflow.stage_runner)."""
    from labflow import stage_runner

    if args.action == "stop":
        print("stopped" if stage_runner.stop() else "no runner was running")
        return 0
    if args.action == "start":
        stage_runner.start_runner()
    info = stage_runner.status()
    print(f"stage runner: {info['state']} ({'enabled' if info['enabled'] else 'disabled by LABFLOW_STAGE_RUNNER'}); "
          f"socket {info['socket']}; log {stage_runner.runtime_dir() / 'runner.log'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="labs, variants and data per profile").set_defaults(func=cmd_list)
    sub.add_parser("check", help="validate params.yaml").set_defaults(func=cmd_check)
    ui = sub.add_parser("ui", help="open the MLflow UI on the pipeline's store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--links-only", action="store_true", help="print each lab's address and exit")
    ui.set_defaults(func=cmd_ui)
    exp = sub.add_parser("exp", help="one lab's experiment history as a table (reads `dvc exp show --json`)")
    exp.add_argument("lab", help="lab03, or 3")
    exp.add_argument("--metric", action="append", help="metric to show (repeatable; default: the lab's headline)")
    exp.add_argument("--width", type=int, default=80, help="terminal width to fit (default 80)")
    exp.add_argument("--all-commits", action="store_true", help="every commit's experiments, not only HEAD's")
    exp.set_defaults(func=cmd_exp)
    server = sub.add_parser("server", help="team tracking server: MLflow on PostgreSQL, artifacts served")
    server.add_argument("--db", help="postgresql://user:pass@host:port/db (default: a private cluster under --data)")
    server.add_argument("--data", default="server", help="folder for artifacts (and the private cluster); default server/")
    server.add_argument("--host", default="127.0.0.1", help="interface to listen on (beyond loopback needs --auth)")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--auth", action="store_true",
                        help="MLflow basic auth (admin password from LABFLOW_SERVER_ADMIN_PASSWORD)")
    server.add_argument("--allowed-hosts", help="Host headers to accept when not on loopback (MLflow's --allowed-hosts)")
    server.set_defaults(func=cmd_server)
    report = sub.add_parser("report", help="write the offline HTML report (report/index.html)")
    report.add_argument("--out", default="report", help="folder to write (default: report/)")
    report.add_argument("--ui", default="http://127.0.0.1:5000", help="the MLflow UI address the run links use")
    report.add_argument("--no-links", action="store_true", help="do not read the MLflow store")
    report.set_defaults(func=cmd_report)
    runner = sub.add_parser("runner", help="status, start or stop the warm process DVC stages fork from")
    runner.add_argument("action", choices=["status", "start", "stop"], nargs="?", default="status")
    runner.set_defaults(func=cmd_runner)
    args = parser.parse_args(argv)
    from labflow.config import ConfigError

    try:
        return args.func(args)
    except ConfigError as err:
        print(f"labflow: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
