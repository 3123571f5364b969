"""Weight-step -> conductance-request kernels of the signed mappings.

The mappings and the update requests are described in docs/physics.md, 'From weights to
conductances' and 'Device updates'.

Pure Numba kernels for the training hot path; :mod:`xbarsim.hardware.mapping` holds the checked
NumPy definitions they must reproduce bit for bit (``fastmath`` is off, the operations and their
order are the same, and ``tests/test_mapping.py`` compares the two).
"""

from __future__ import annotations

import numpy as np

from xbarsim.kernels._jit import jit


@jit
def signed_split_requests(g_pos, g_neg, dw, alpha, g_min, g_max):
    """Conductance requests [S] of the signed-split pair for a weight step.

    ``W = (g_pos - g_neg) / alpha``; the target of ``W' = W + dw`` is
    ``g+' = clip(g_min + alpha max(W', 0))``, ``g-' = clip(g_min + alpha max(-W', 0))``
    (clipped to ``[g_min, g_max]``) and the requests are ``g+' - g_pos``, ``g-' - g_neg``.

    Parameters
    ----------
    g_pos, g_neg : ndarray of shape (n_rows, n_cols)
        Present conductances [S] of the positive and negative arrays.
    dw : ndarray of shape (n_rows, n_cols)
        Requested weight step (any strides).
    alpha : float
        Conductance per weight unit [S].
    g_min, g_max : float
        Conductance bounds [S].

    Returns
    -------
    ndarray of shape (2, n_rows, n_cols)
        Requested signed changes [S] of the positive (index 0) and negative (1) arrays.
    """
    n_rows, n_cols = dw.shape
    out = np.empty((2, n_rows, n_cols))
    for i in range(n_rows):
        for j in range(n_cols):
            w_new = (g_pos[i, j] - g_neg[i, j]) / alpha + dw[i, j]
            t_pos = min(max(g_min + alpha * max(w_new, 0.0), g_min), g_max)
            t_neg = min(max(g_min + alpha * max(-w_new, 0.0), g_min), g_max)
            out[0, i, j] = t_pos - g_pos[i, j]
            out[1, i, j] = t_neg - g_neg[i, j]
    return out
