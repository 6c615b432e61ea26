import torch

from aelab.config import ContractiveConfig, NoiseConfig, SparsityConfig
from aelab.model import Dense
from aelab.objectives import contractive_penalty, corrupt, sparsity_penalty


def _x():
    return torch.rand(2000, 50, generator=torch.Generator().manual_seed(0))


def test_zero_noise_is_the_identity():
    x = _x()
    for kind in ("none", "gaussian", "masking", "salt_pepper"):
        assert corrupt(x, NoiseConfig(kind, 0.0)) is x


def test_each_corruption_has_the_asked_strength():
    x, g = _x(), torch.Generator().manual_seed(1)
    assert abs(float((corrupt(x, NoiseConfig("gaussian", 0.3), g) - x).std()) - 0.3) < 0.01
    x1 = x + 0.5  # strictly positive, so zeroed entries are exactly the masked ones
    assert abs(float((corrupt(x1, NoiseConfig("masking", 0.25), g) == 0).float().mean()) - 0.25) < 0.01
    sp = corrupt(x1, NoiseConfig("salt_pepper", 0.2), g)
    changed = (sp != x1).float().mean()
    assert abs(float(changed) - 0.2) < 0.01
    assert set(torch.unique(sp[sp != x1]).tolist()) <= {float(x1.min()), float(x1.max())}


def test_kl_sparsity_is_zero_at_target_and_grows_away_from_it():
    cfg = SparsityConfig("kl", target=0.1, weight=1.0)
    at_target = torch.full((64, 8), 0.1)
    assert float(sparsity_penalty(at_target, cfg)) < 1e-6
    assert float(sparsity_penalty(torch.full((64, 8), 0.5), cfg)) > 0.5
    assert float(sparsity_penalty(torch.full((64, 8), 0.5), SparsityConfig("l1", weight=2.0))) == 1.0


def test_contractive_closed_form_equals_the_true_jacobian_norm():
    torch.manual_seed(0)
    layer = Dense(6, 4, "sigmoid")
    x = torch.rand(3, 6)
    h = layer(x)
    exact = torch.stack([torch.autograd.functional.jacobian(layer, x[i]).pow(2).sum() for i in range(3)]).mean()
    got = contractive_penalty(layer, x, h, ContractiveConfig(1.0), layer)
    assert torch.allclose(got, exact, rtol=1e-5)


def test_contractive_estimator_is_unbiased_for_deep_encoders():
    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    x = torch.rand(4, 6)
    exact = torch.stack([torch.autograd.functional.jacobian(enc, x[i]).pow(2).sum() for i in range(4)]).mean()
    est = torch.stack([contractive_penalty(enc, x, enc(x), ContractiveConfig(1.0)) for _ in range(3000)]).mean()
    assert abs(float(est.detach()) / float(exact) - 1) < 0.05
