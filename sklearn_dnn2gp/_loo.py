"""The GP view's approximate leave-one-out of the training points.

Removing training point ``i`` from a Laplace posterior with precision ``H`` takes
its curvature term out, ``H_-i = H - w_i J_i^T Lambda_i J_i``, and, since the
objective without ``i`` has the gradient ``-w_i J_i^T r_i`` at ``w*``, moves the
weights by one Newton step, ``w_-i = w* + H_-i^-1 w_i J_i^T r_i``. In the latent
space of point ``i`` both are closed forms of its latent covariance
``V_i = J_i H^-1 J_i^T`` alone (Woodbury):

    V_-i = J_i H_-i^-1 J_i^T = V_i (I - w_i Lambda_i V_i)^-1,
    f_-i = f_i + w_i V_-i r_i,

so the leave-one-out predictive of every training point costs one K x K solve
each, after the latent covariances that any prediction computes. For the
posterior tempered at ``T`` (likelihood and prior raised to ``1/T``), ``H`` and
point ``i``'s term are both divided by ``T``: the cavity's covariance is
``T V_-i`` and its mean the untempered ``f_-i``.
"""

import torch


def leave_one_out_latents(f, var, residual, precision, weights=None):
    """The cavity ``(f_-i, V_-i)`` of each training point (see the module).

    Parameters
    ----------
    f : tensor of shape (n, K)
        Latent means (network outputs) at the training points.
    var : tensor of shape (n, K, K)
        Their posterior covariances ``J_i Sigma J_i^T``.
    residual, precision : tensors of shapes (n, K) and (n, K, K)
        The likelihood's ``r_i = dl/df_i`` and ``Lambda_i = d2l/df_i^2`` at ``f``.
    weights : tensor of shape (n,), optional
        Sample weights ``w_i`` of the training objective.

    Returns
    -------
    f_loo : tensor of shape (n, K)
    var_loo : tensor of shape (n, K, K)
    """
    if weights is not None:
        residual = residual * weights[:, None]
        precision = precision * weights[:, None, None]
    eye = torch.eye(f.shape[1], dtype=var.dtype, device=var.device)
    # V (I - Lambda V)^-1 = ((I - Lambda V)^-T V^T)^T, and V, Lambda are symmetric:
    # one batched solve with the matrix (I - V Lambda).
    var_loo = torch.linalg.solve(eye - var @ precision, var)
    var_loo = (var_loo + var_loo.transpose(1, 2)) / 2
    return f + (var_loo @ residual[..., None])[..., 0], var_loo
