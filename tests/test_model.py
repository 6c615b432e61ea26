import pytest
import torch

from aelab.config import RunConfig
from aelab.model import StageAE, build_model, count_params, first_layer_filters


def _dense(tied, layers="100,30"):
    torch.manual_seed(0)
    return build_model(RunConfig().with_overrides({"model.layers": layers, "model.tied": tied}), (1, 28, 28))


def test_tied_decoder_shares_the_encoder_weight_storage():
    ae = _dense(True)
    for enc, dec in zip(ae.encoders, ae.decoders):
        assert dec.weight is enc.weight
        assert dec.weight.data_ptr() == enc.weight.data_ptr()


def test_tying_removes_exactly_the_decoder_weight_matrices():
    untied, tied = count_params(_dense(False)), count_params(_dense(True))
    assert untied - tied == 784 * 100 + 100 * 30
    assert tied < 0.55 * untied


def test_tied_gradients_flow_from_both_sides_into_one_tensor():
    ae = _dense(True)
    x = torch.rand(4, 1, 28, 28)
    ae(x).sum().backward()
    w = ae.encoders[0].weight
    assert w.grad is not None and ae.decoders[0].weight.grad is w.grad


def test_shapes_roundtrip_dense_and_conv():
    x = torch.rand(3, 1, 28, 28)
    ae = _dense(False, "128,64,32")
    assert ae(x).shape == x.shape and ae.encode(x).shape == (3, 32)
    assert ae.encode(x, upto=1).shape == (3, 128) and ae.decode(ae.encode(x, upto=2), frm=2).shape == x.shape
    for tied in (False, True):
        conv = build_model(RunConfig().with_overrides({"model.kind": "conv", "model.layers": "8,4,4",
                                                       "model.tied": tied}), (1, 28, 28))
        assert conv(x).shape == x.shape  # 28 is padded to 32 inside and cropped back
        assert conv.code_dim() == 4 * 4 * 4


def test_tied_conv_has_fewer_params_and_shares_kernels():
    mk = lambda t: build_model(RunConfig().with_overrides({"model.kind": "conv", "model.layers": "8,4",  # noqa
                                                          "model.tied": t}), (1, 16, 16))
    tied = mk(True)
    assert tied.decoders[0].weight is tied.encoders[0].weight
    assert count_params(mk(False)) - count_params(tied) == 8 * 1 * 9 + 4 * 8 * 9


def test_stage_ae_uses_the_same_modules_as_the_stack():
    ae = _dense(False, "20,10")
    x = torch.rand(5, 1, 28, 28)
    s1, s2 = StageAE(ae, 1), StageAE(ae, 2)
    h1 = s1.encode(x)
    assert torch.allclose(h1, ae.encode(x, upto=1))
    assert torch.allclose(s2.encode(h1), ae.encode(x))
    assert s1(x).shape == x.shape and s2(h1).shape == h1.shape
    assert {id(p) for p in ae.stage_parameters(2)} == {id(p) for p in list(ae.encoders[1].parameters()) +
                                                       list(ae.decoders[1].parameters())}


def test_activations_linear_code_and_sigmoid_output():
    cfg = RunConfig().with_overrides({"model.layers": "16,4", "model.code_activation": "linear"})
    ae = build_model(cfg, (1, 8, 8))
    with torch.no_grad():
        out = ae(torch.randn(6, 1, 8, 8) * 5)
    assert float(out.min()) >= 0 and float(out.max()) <= 1  # BCE -> sigmoid output
    assert ae.encoders[1].act_name == "linear" and ae.encoders[0].act_name == "relu"
    assert first_layer_filters(ae).shape == (16, 1, 8, 8)


def test_encoder_blocks_split_into_pre_activation_and_post():
    """pre(h) is the bare layer (checked against F.linear / F.conv2d), post(pre(h)) is the block's forward."""
    import torch.nn.functional as F

    dense = _dense(False, "20,5")
    conv = build_model(RunConfig().with_overrides({"model.kind": "conv", "model.layers": "4,6"}), (1, 8, 8))
    x = torch.rand(3, 1, 8, 8)
    h = dense.prepare(torch.rand(3, 1, 28, 28))
    enc = dense.encoders[0]
    assert torch.allclose(enc.pre(h), F.linear(h, enc.linear.weight, enc.linear.bias))
    assert enc.width == 20 and torch.equal(enc.post(enc.pre(h)), enc(h))
    c = conv.encoders[0]
    a = c.pre(conv.prepare(x))
    assert torch.allclose(a, F.conv2d(conv.prepare(x), c.conv.weight, c.conv.bias, padding=1))
    assert c.width == 4 and a.shape == (3, 4, 8, 8) and c.post(a).shape == (3, 4, 4, 4)
    assert torch.equal(c.post(a), c(conv.prepare(x)))


@pytest.mark.parametrize("kind,layers,shape", [("dense", "64,16,4", (1, 12, 12)), ("conv", "8,4", (3, 16, 16))])
@pytest.mark.parametrize("tied", [True, False])
def test_the_torch_free_param_count_matches_the_built_model(kind, layers, shape, tied):
    from aelab.arch import param_count

    cfg = RunConfig().with_overrides({"model.kind": kind, "model.layers": layers, "model.tied": tied})
    assert param_count(cfg, shape) == count_params(build_model(cfg, shape))
    other = cfg.with_overrides({"model.tied": not tied})
    assert param_count(cfg, shape, tied=not tied) == count_params(build_model(other, shape))
