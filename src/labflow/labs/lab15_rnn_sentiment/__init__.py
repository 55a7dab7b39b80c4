"""Lab 15: LSTM vs GRU sentence sentiment (rotten-tomatoes snippets; IMDB 50k in the full profile).

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
