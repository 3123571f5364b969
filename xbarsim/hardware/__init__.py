r"""Crossbar hardware: circuit conventions every module relies on.

Geometry (binding; the circuit of docs/circuit.md and docs/golden.md)::

        V_0 --[r_source_0]--(0,0)--r_row--(0,1)--r_row-- ... --(0,N-1)      row 0 (word line)
                              |             |                     |
                            g[0,0]        g[0,1]               g[0,N-1]     device joins row node
                              |             |                     |         (i,j) to column node (i,j)
                            r_col         r_col                 r_col
                              |             |                     |
        V_1 --[r_source_1]--(1,0)--r_row--(1,1)-- ...                         row 1
          ...                 |             |                     |
        V_M-1 -[r_source]-(M-1,0)-- ...                        (M-1,N-1)
                              |             |                     |
                          [r_sense_0]   [r_sense_1]         [r_sense_N-1]
                              |             |                     |
                             0 V           0 V                   0 V        virtual grounds

* A crossbar has ``n_rows = M`` word lines (forward inputs) and ``n_cols = N`` bit lines (forward
  outputs); conductances ``g`` have shape ``(n_rows, n_cols)`` [S].
* Row ``i`` is driven at its left end (j = 0) by an ideal source ``V_i`` behind ``r_source[i]``;
  column ``j`` is sensed at its bottom end (i = n_rows-1) through ``r_sense[j]`` into a 0 V
  virtual ground. ``r_row`` / ``r_col`` [Ohm] join adjacent cells; there are no extra end
  segments (a wire between driver and first cell belongs to ``r_source``). Any of them may be 0:
  a zero terminal resistance makes the node ideal (eliminated), a zero wire merges the line.
* Forward product: ``i_out = v @ g_eff`` with ``v`` of shape ``(batch, n_rows)`` [V] and
  ``i_out`` of shape ``(batch, n_cols)`` [A]; ``g_eff == g`` when every parasitic is 0.
* Backward product: columns driven through ``r_sense`` at the bottom, rows sensed through
  ``r_source`` at the left. By reciprocity of a passive linear network this is exactly
  ``i_back = d @ g_eff.T`` (tested against the nodal solver on the flipped circuit). Every solver
  therefore uses ``g_eff.T`` backwards; a config with other backward terminations must solve again.
* Sign: output current is positive when it flows into the sense node for positive ``v`` and ``g``.
* Units: SI (S, Ohm, V, A) as float64 everywhere; solvers return SI.
* Weights: a layer weight ``W`` has shape ``(in_features, out_features) = (n_rows, n_cols)``.
"""
