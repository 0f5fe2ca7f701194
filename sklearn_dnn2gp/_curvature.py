"""Per-example Jacobians of the network outputs and the generalized Gauss-Newton.

For the MLPs built by :func:`~sklearn_dnn2gp._network.make_mlp` the Jacobian is
computed analytically, layer by layer: the Jacobian of the outputs with respect
to a linear layer's weight is the outer product of the gradient back-propagated
to that layer's pre-activation and the layer's input. Any other module falls
back to ``torch.func.vmap(jacrev)``. Everything is streamed over batches so
memory stays O(P^2 + batch K P).
"""

import torch
from torch import nn

from ._utils import batches

_DERIVATIVES = {
    nn.Tanh: lambda z, a: 1 - a**2,
    nn.Sigmoid: lambda z, a: a * (1 - a),
    nn.ReLU: lambda z, a: (z > 0).to(z.dtype),
    nn.Identity: lambda z, a: torch.ones_like(z),
}


def _mlp_structure(module):
    """Return (linears, activations) for a supported Sequential MLP, else None."""
    if not isinstance(module, nn.Sequential):
        return None
    linears, activations, pending = [], [], None
    for layer in module:
        if isinstance(layer, nn.Linear):
            if layer.bias is None:
                return None
            if linears:
                activations.append(pending if pending is not None else nn.Identity())
            linears.append(layer)
            pending = None
        elif type(layer) in _DERIVATIVES and linears and pending is None:
            pending = layer
        else:
            return None
    if not linears or pending is not None:
        return None
    return linears, activations


def _mlp_jacobian(linears, activations, X):
    inputs, pre_acts, outputs = [], [], []
    h = X
    for i, linear in enumerate(linears):
        inputs.append(h)
        z = linear(h)
        if i < len(activations):
            h = activations[i](z)
            pre_acts.append(z)
            outputs.append(h)
        else:
            f = z
    n, k = f.shape
    sizes = [lin.weight.numel() + lin.bias.numel() for lin in linears]
    J = f.new_empty((n, k, sum(sizes)))
    back = torch.eye(k, dtype=f.dtype, device=f.device).expand(n, k, k)
    offset = sum(sizes)
    for i in range(len(linears) - 1, -1, -1):
        linear = linears[i]
        n_w = linear.weight.numel()
        offset -= sizes[i]
        a = inputs[i]
        J[:, :, offset:offset + n_w] = (back[:, :, :, None] * a[:, None, None, :]).reshape(
            n, k, n_w
        )
        J[:, :, offset + n_w:offset + sizes[i]] = back
        if i > 0:
            derivative = _DERIVATIVES[type(activations[i - 1])](pre_acts[i - 1], outputs[i - 1])
            back = (back @ linear.weight) * derivative[:, None, :]
    return f, J


def _functional_jacobian(module, X):
    from torch.func import functional_call, jacrev, vmap

    params = {name: p.detach() for name, p in module.named_parameters()}

    def single(p, x):
        return functional_call(module, p, (x[None],))[0]

    jac = vmap(jacrev(single), in_dims=(None, 0))(params, X)
    f = module(X)
    n, k = f.shape
    J = torch.cat([jac[name].reshape(n, k, -1) for name in params], dim=2)
    return f, J


@torch.no_grad()
def output_and_jacobian(module, X):
    """Network outputs ``f`` (n, K) and per-example Jacobians ``J`` (n, K, P)."""
    structure = _mlp_structure(module)
    if structure is not None:
        return _mlp_jacobian(*structure, X)
    with torch.enable_grad():
        f, J = _functional_jacobian(module, X)
    return f.detach(), J.detach()


def whitened_jacobians(module, likelihood, X, weights=None, batch_size=512):
    """Yield ``(slice, f, J, M)`` per batch, with ``M_i = sqrt(w_i) R_i J_i``.

    ``R_i`` is the likelihood's square root of the noise precision, so that
    ``M^T M`` is the (weighted) GGN of the batch.
    """
    for sl in batches(X.shape[0], batch_size):
        f, J = output_and_jacobian(module, X[sl])
        M = likelihood.whiten(f, J)
        if weights is not None:
            M = M * torch.sqrt(weights[sl])[:, None, None]
        yield sl, f, J, M


def ggn(module, likelihood, X, weights=None, structure="full", batch_size=512):
    """The GGN ``sum_i w_i J_i^T Lambda_i J_i``: a P x P matrix or its diagonal."""
    G = None
    for _, _, _, M in whitened_jacobians(module, likelihood, X, weights, batch_size):
        M = M.reshape(-1, M.shape[-1])
        term = (M**2).sum(0) if structure == "diag" else M.T @ M
        G = term if G is None else G + term
    return G
