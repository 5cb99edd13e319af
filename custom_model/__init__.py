"""Our own streaming Telugu models: the neural codec (``custom_model.codec``) and, built on it, the S2S model.

Training machinery shared by both lives in ``custom_model.trainer``. Needs the ``train`` extra
(``pip install 's2s-bench[train]'`` with your torch version pinned on the same command line).
"""
