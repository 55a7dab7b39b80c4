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
