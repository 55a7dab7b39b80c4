"""Tabular features: imputation, scaling and one-hot encoding fitted on the training split only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class EncodedTable:
    train: np.ndarray
    others: list[np.ndarray]
    feature_names: list[str]
    groups: dict[str, list[int]]  # original column -> its encoded feature indices


def encode_features(train_df, *other_dfs, max_categories: int = 20) -> EncodedTable:
    """Fit median/most-frequent imputation, standard scaling and one-hot on ``train_df`` only.

    Fitting on the training split alone keeps validation and test data from leaking into
    the preprocessing, which is what a model in production would face.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in train_df.columns if np.issubdtype(train_df[c].dtype, np.number) and train_df[c].dtype != bool]
    categorical = [c for c in train_df.columns if c not in numeric]
    transformer = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=max_categories, sparse_output=False),
                ),
                categorical,
            ),
        ],
        verbose_feature_names_out=False,
    )

    def as_objects(df):
        df = df.copy()
        for c in categorical:
            df[c] = df[c].astype("object").where(df[c].notna(), None).astype(str)
        return df

    train = transformer.fit_transform(as_objects(train_df)).astype(np.float32)
    others = [transformer.transform(as_objects(df)).astype(np.float32) for df in other_dfs]
    names = list(transformer.get_feature_names_out())
    groups: dict[str, list[int]] = {c: [names.index(c)] for c in numeric}
    for c in categorical:
        groups[c] = [i for i, n in enumerate(names) if n.startswith(f"{c}_")]
    return EncodedTable(train, others, names, groups)


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


def stratified_split_indices(y: np.ndarray, val_fraction: float, test_fraction: float,
                             seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) indices with every class in the same proportion in each split.

    With a rare class (3% defaults) a plain random split can leave a validation set with
    a handful of positives; stratifying keeps the class rate of every split equal.
    """
    rng = np.random.default_rng(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test, n_val = int(round(len(idx) * test_fraction)), int(round(len(idx) * val_fraction))
        for part, chunk in zip(parts, (idx[n_test + n_val :], idx[n_test : n_test + n_val], idx[:n_test])):
            part.append(chunk)
    train, val, test = (rng.permutation(np.concatenate(p)) for p in parts)
    return train, val, test


def prepare_table_classification(lab_id: str, dataset: str, split, seed: int) -> dict:
    """Split a classification table (stratified), encode it fitted on the training split, save tensors.

    ``split`` has ``val_fraction``, ``test_fraction`` and ``train_size`` (None: all of the
    training split; otherwise its first rows, which keep the class rate on average).
    Labels are int64 class codes; the meta names the classes and counts them per split.
    """
    import torch

    from labflow.frame import paths
    from labflow.data import load_table
    from labflow.data.manifest import verify_manifest
    from labflow.prep.tensors import save_processed

    df, target = load_table(paths.raw_dir(dataset))
    classes = verify_manifest(paths.raw_dir(dataset)).get("classes")
    if not classes:
        raise ValueError(f"data set {dataset} has no classes in its manifest: not a classification table")
    y = df[target].to_numpy(dtype=np.int64)
    train_idx, val_idx, test_idx = stratified_split_indices(y, split.val_fraction, split.test_fraction, seed)
    if split.train_size is not None:
        train_idx = train_idx[: split.train_size]
    features = df.drop(columns=[target])
    enc = encode_features(features.iloc[train_idx], features.iloc[val_idx], features.iloc[test_idx])
    tensors = {"x_train": torch.from_numpy(enc.train), "y_train": torch.from_numpy(y[train_idx])}
    for name, x, idx in (("val", enc.others[0], val_idx), ("test", enc.others[1], test_idx)):
        tensors[f"x_{name}"], tensors[f"y_{name}"] = torch.from_numpy(x), torch.from_numpy(y[idx])
    counts = {name: np.bincount(y[idx], minlength=len(classes)).tolist()
              for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx))}
    meta = {
        "lab": lab_id, "dataset": dataset, "target": target, "classes": list(classes),
        "feature_names": enc.feature_names, "groups": enc.groups,
        "sizes": {k: int(sum(v)) for k, v in counts.items()}, "class_counts": counts,
    }
    save_processed(paths.processed_dir(lab_id), tensors, meta)
    return meta
