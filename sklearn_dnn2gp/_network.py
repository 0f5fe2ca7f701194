"""The network: an MLP factory and the flat parameter vector <-> module maps."""

import math

import torch
from torch import nn
from torch.nn.utils import skip_init

from ._module_check import build_module

ACTIVATIONS = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


def make_mlp(n_inputs, hidden_layer_sizes, n_outputs, activation, *, dtype, device,
             generator):
    """Build ``Linear -> act -> ... -> Linear`` and initialise it from ``generator``.

    Initialisation follows torch's default for ``nn.Linear`` (uniform in
    +-1/sqrt(fan_in) for weights and biases) but draws from the local CPU
    generator, so a CPU and a GPU fit with the same seed start identically.
    ``hidden_layer_sizes=()`` gives a linear model.
    """
    sizes = [n_inputs, *hidden_layer_sizes, n_outputs]
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        # skip_init: torch's own initialisation would draw from the global RNG.
        layers.append(skip_init(nn.Linear, fan_in, fan_out, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    module = nn.Sequential(*layers)
    with torch.no_grad():
        for layer in module:
            if isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.in_features)
                for param in (layer.weight, layer.bias):
                    param.copy_(
                        torch.empty(param.shape, dtype=dtype).uniform_(
                            -bound, bound, generator=generator
                        )
                    )
    return module.to(device)


def n_parameters(module):
    return sum(p.numel() for p in module.parameters())


def flat_parameters(module):
    """All parameters in module order as one detached vector."""
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def set_flat_parameters(module, vector):
    """Write ``vector`` into the parameters of ``module`` (in place, no grad)."""
    offset = 0
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(vector[offset:offset + p.numel()].view_as(p))
            offset += p.numel()


def make_module(factory, n_inputs, n_outputs, *, dtype, device, seed):
    """A user network from ``factory(n_inputs, n_outputs)``, initialised under ``seed``.

    Modules initialise from torch's global generator; its state is saved and
    restored around the call (``fork_rng``), so the initialisation follows
    ``random_state`` while the caller's random stream is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_module(factory, n_inputs, n_outputs)
    return module.to(device=device, dtype=dtype)


def same_architecture(old, new):
    """Whether a fitted module has the parameter shapes of a newly built one."""
    if old is None or type(old) is not type(new):
        return False
    old_shapes = [(name, p.shape) for name, p in old.named_parameters()]
    return old_shapes == [(name, p.shape) for name, p in new.named_parameters()]


def parameter_groups(module, within=None):
    """The prior group of each entry of the flat parameter vector: one group per
    submodule that holds parameters itself (an MLP's ``Linear`` layers, weights
    and biases together), numbered in the order of ``module.parameters()``.

    With ``within`` (a submodule, e.g. the last layer of a last-layer
    posterior), the groups of ``within``'s parameters, in its own order.
    Returns ``(groups, n_groups)``: a LongTensor on the CPU and the count.
    """
    owner, n_groups = {}, 0
    for sub in module.modules():
        own = [p for p in sub.parameters(recurse=False) if id(p) not in owner]
        for p in own:
            owner[id(p)] = n_groups
        n_groups += bool(own)
    target = module if within is None else within
    groups = [torch.full((p.numel(),), owner[id(p)], dtype=torch.long)
              for p in target.parameters()]
    return torch.cat(groups) if groups else torch.zeros(0, dtype=torch.long), n_groups
