"""What a user's network (``module=``) must be, checked once at the start of ``fit``.

DNN2GP trains every parameter of the module and places a Gaussian over all of
them, and it differentiates the module with ``torch.func`` as a function of its
parameters and input. A module that breaks one of those assumptions otherwise
fails deep inside training or the Jacobian with a torch error, or (a wrong
number of outputs) not at all. Each check names the problem and what is allowed.
"""

import torch
from torch import nn

from ._curvature import output_and_jacobian

_CONTRACT = ("module must be a callable (n_features, n_outputs) -> torch.nn.Module whose "
             "forward maps a float tensor of shape (n_samples, n_features) to one of shape "
             "(n_samples, n_outputs)")


def build_module(factory, n_inputs, n_outputs):
    """``factory(n_inputs, n_outputs)``, refused clearly when it is not a factory of
    modules or builds one without values (on the meta device)."""
    if isinstance(factory, nn.Module):
        raise TypeError(
            f"module must be a factory of networks, not a network: got a "
            f"{type(factory).__name__} instance. Pass its class or a function, e.g. "
            f"module=lambda n_features, n_outputs: torch.nn.Linear(n_features, n_outputs); "
            f"the estimator builds a fresh network at each fit ({_CONTRACT})."
        )
    try:
        module = factory(n_inputs, n_outputs)
    except Exception as exc:
        error = TypeError if isinstance(exc, TypeError) else ValueError
        raise error(
            f"module(n_features={n_inputs}, n_outputs={n_outputs}) raised "
            f"{type(exc).__name__}: {exc} ({_CONTRACT})."
        ) from exc
    if not isinstance(module, nn.Module):
        raise TypeError(f"{_CONTRACT}; it returned {type(module).__name__}.")
    meta = [name for name, t in _named_tensors(module) if t.is_meta]
    if meta:
        raise ValueError(
            f"module built tensors on the meta device, which hold no values ({_names(meta)}). "
            "Build the network on a real device, or call .to_empty(device='cpu') and "
            "initialise its parameters inside the factory."
        )
    return module


def check_module(module, X, n_outputs):
    """Refuse, with what is wrong and what is allowed, a built user network that
    DNN2GP cannot train, differentiate or place a posterior over."""
    check_parameters(module)
    check_forward(module, X, n_outputs)


def check_parameters(module):
    """Every parameter trainable, floating point, non-empty and registered once."""
    named = list(module.named_parameters(remove_duplicate=False))
    if not named:
        raise ValueError(
            f"module {type(module).__name__} has no parameters: DNN2GP trains a network's "
            "parameters and places its posterior over them."
        )
    names_of = {}
    for name, p in named:
        names_of.setdefault(id(p), []).append(name)
    tied = [" = ".join(names) for names in names_of.values() if len(names) > 1]
    if tied:
        raise ValueError(
            f"module registers the same parameter under several names ({'; '.join(tied)}). "
            "Each parameter must be registered once, since the posterior has one entry per "
            "parameter value: to share a layer, register it once and call it more than "
            "once in forward."
        )
    frozen = [name for name, p in named if not (p.requires_grad and p.is_floating_point())]
    if frozen:
        raise ValueError(
            f"module has parameters that are not trained ({_names(frozen)}: requires_grad="
            "False or not floating point). DNN2GP trains every parameter and places its "
            "posterior over all of them; register fixed tensors as buffers "
            "(self.register_buffer) instead of frozen parameters."
        )
    empty = [name for name, p in named if p.numel() == 0]
    if empty:
        raise ValueError(
            f"module has parameters with no elements ({_names(empty)}), e.g. a layer with "
            "0 units; remove them."
        )


def check_forward(module, X, n_outputs):
    """Run ``module`` on a few rows of ``X`` (in eval mode): a tensor of shape
    (rows, n_outputs), a deterministic function of its input that changes no buffer
    and uses every parameter, and differentiable by ``torch.func``."""
    rows = X[:2]
    buffers = [(name, b.clone()) for name, b in module.named_buffers()]
    names, params = zip(*module.named_parameters())
    # Random operations in forward would advance the caller's generators.
    devices = [rows.device.index or 0] if rows.is_cuda else []
    with torch.random.fork_rng(devices=devices):
        try:
            with torch.enable_grad():
                out = module(rows)
            again = module(rows)
        except Exception as exc:
            raise ValueError(
                f"module's forward failed on {len(rows)} training rows of shape "
                f"{tuple(rows.shape)}: {type(exc).__name__}: {exc} ({_CONTRACT})."
            ) from exc
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"module's forward must return a tensor of shape (n_samples, {n_outputs}); it "
            f"returned {type(out).__name__} ({_CONTRACT})."
        )
    if tuple(out.shape) != (len(rows), n_outputs) or not out.is_floating_point():
        raise ValueError(
            f"module's forward returned a {out.dtype} tensor of shape {tuple(out.shape)} for "
            f"{len(rows)} rows; this fit needs floating-point outputs of shape "
            f"(n_samples, {n_outputs}): the factory receives n_outputs={n_outputs} as its "
            "second argument (one output per target for a regressor, one logit per class, "
            "or one for two classes, for a classifier)."
        )
    changed = [name for name, before in buffers
               if not torch.equal(before, module.get_buffer(name))]
    if changed:
        raise ValueError(
            f"module's forward changes its buffers in place ({_names(changed)}). DNN2GP "
            "needs forward to be a function of the parameters and the input alone "
            "(running statistics such as BatchNorm's are frozen in eval mode, which fit uses)."
        )
    if not torch.equal(out.detach(), again):
        raise ValueError(
            "module's forward is not a deterministic function of its input: two calls on "
            "the same rows differed. Random operations in forward (noise, dropout called "
            "as a function) are not allowed; nn.Dropout layers are off in eval mode, "
            "which fit uses."
        )
    grads = torch.autograd.grad(out.sum(), params, allow_unused=True)
    unused = [name for name, g in zip(names, grads) if g is None]
    if unused:
        raise ValueError(
            f"module has parameters that its forward does not use ({_names(unused)}). Every "
            "parameter gets a posterior and must reach the output; remove the unused ones."
        )
    try:
        output_and_jacobian(module, rows[:1])
    except Exception as exc:
        raise ValueError(
            "module could not be differentiated by torch.func (vmap over rows of jacrev "
            "in the parameters), which DNN2GP needs for the network's Jacobian: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _named_tensors(module):
    yield from module.named_parameters(remove_duplicate=False)
    yield from module.named_buffers(remove_duplicate=False)


def _names(names, shown=5):
    listed = ", ".join(repr(n) for n in names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")
