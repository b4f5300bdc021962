"""Contamination audit: is an evaluation set inside the pool?

Four kinds of match (:mod:`.matchers`, :mod:`.embedmatch`): equal bytes (sha256), a close
perceptual hash (multi-index hashing, :mod:`.hashindex`), a close image embedding of the pool's
own model, and an eval caption or class prompt inside a pool caption. :func:`.audit.run` stores
the pairs beside the dataset and the matched rows as the subset ``contaminated-<eval>``.
"""
