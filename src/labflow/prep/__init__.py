"""Data preparation the labs share: image, table, pixel, canvas, series, review, subword and recall-task splits, and the processed-tensor files they write."""
