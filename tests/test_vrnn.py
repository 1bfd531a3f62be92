"""The VRNN's sequential terms: sums, masks, the reparameterised gradient, generation, T = 1."""

import pytest
import torch
from torch.distributions import kl_divergence

from aevb.models.vrnn import VRNN, VRNNConfig
from aevb.objectives import elbo, iwae

B, T, D, DZ = 6, 5, 7, 2


def small_vrnn(t=T):
    torch.manual_seed(0)
    return VRNN(VRNNConfig(latent_dim=DZ, state_dim=16, hidden=24), (t, D))


def binary(b=B, t=T):
    return (torch.rand(b, t, D) > 0.5).float()


def test_per_step_terms_sum_to_the_totals():
    model, x = small_vrnn(), binary()
    torch.manual_seed(1)
    steps = model.step_terms(x, k=3)
    torch.manual_seed(1)
    total = model.terms(x, k=3)
    assert steps.log_px.shape == (T, 3, B)
    torch.testing.assert_close(total.log_px, steps.log_px.sum(0))
    torch.testing.assert_close(total.log_pz, steps.log_pz.sum(0))
    torch.testing.assert_close(total.log_qz, steps.log_qz.sum(0))
    torch.testing.assert_close(total.kl, steps.kl.sum(0).mean(0))
    # the analytic-KL ELBO and the Monte Carlo one estimate the same bound
    torch.manual_seed(2)
    many = model.terms(x, k=4000)
    torch.testing.assert_close(elbo(many), elbo(many, analytic_kl=False), atol=0.15, rtol=0)


def test_masked_steps_contribute_exactly_zero():
    model = small_vrnn()
    x = binary()
    lengths = torch.tensor([5, 3, 1, 4, 5, 2])
    torch.manual_seed(1)
    s = model.step_terms(x, lengths, k=2)
    padded = torch.arange(T)[:, None, None] >= lengths[None, None, :]  # (T, 1, B)
    for v in (s.log_px, s.log_pz, s.log_qz, s.kl):
        assert (v.masked_select(padded) == 0).all()
        assert (v.masked_select(~padded) != 0).all()
    # whatever the padding holds, the totals do not move
    garbage = torch.where(padded[:, 0].T[..., None], torch.rand(B, T, D).round(), x)
    torch.manual_seed(1)
    again = model.terms(garbage, lengths, k=2)
    torch.manual_seed(1)
    first = model.terms(x, lengths, k=2)
    torch.testing.assert_close(again.log_px, first.log_px, atol=0, rtol=0)
    torch.testing.assert_close(again.kl, first.kl, atol=0, rtol=0)
    # and sequences of length 3 score as the same model would on the first 3 steps alone
    three = torch.full((B,), 3)
    torch.manual_seed(1)
    masked = model.terms(x, three)
    torch.manual_seed(1)
    cut = model.terms(x[:, :3])
    torch.testing.assert_close(masked.log_px, cut.log_px)
    torch.testing.assert_close(masked.kl, cut.kl)


def test_the_encoder_gets_a_gradient_through_log_px():
    """The tutorial drew z_t with sample(): no reconstruction gradient reached q. Ours does."""
    model, x = small_vrnn(), binary()
    model.terms(x).log_px.sum().backward()
    for name in ("q_x.weight", "q_h.weight", "q_rest.1.mean.weight", "q_rest.1.std.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("mode", ["sample", "mean", "param"])
def test_generation_shapes(mode):
    model = small_vrnn()
    x = model.sample(9, mode=mode)
    assert x.shape == (9, T, D) and 0 <= x.min() and x.max() <= 1
    if mode == "sample":
        assert ((x == 0) | (x == 1)).all()
    assert model.posterior_mean(binary()).shape == (B, T * DZ)


def test_length_one_is_a_vae_bound():
    """With T = 1, h_1 is a constant, and the ELBO is that of a VAE with a learned prior
    p(z | h_1), encoder q(z | h_1, x) and decoder p(x | h_1, z)."""
    model, x = small_vrnn(t=1), binary(t=1)
    torch.manual_seed(3)
    got = elbo(model.terms(x, k=5))
    torch.manual_seed(3)
    state, inp = model._initial(B, x)
    h = model._rnn_step(state, inp)  # (B, H), the same for every datapoint
    assert torch.allclose(h, h[:1].expand_as(h))
    q = model.q_rest(torch.relu(model.q_x(x[:, 0]) + model.q_h(h)))
    p = model.prior_net(h)
    eps = torch.randn(5, B, DZ)
    z = q.mean + q.base_dist.scale * eps
    log_px = model.decoder(torch.cat([h.expand(5, B, -1), z], -1)).log_prob(x[:, 0])
    want = log_px.mean(0) - kl_divergence(q, p)
    torch.testing.assert_close(got, want)
    assert (iwae(model, x, k=50) >= got - 0.5).all()


def test_the_model_is_a_normalised_distribution_over_sequences():
    """Importance weights are unbiased for p(x) whatever the proposal, so summed over all 2^(T*D)
    binary sequences they must give 1. A step that let h_t or the prior see x_t would break this."""
    torch.manual_seed(0)
    t, d = 2, 2
    model = VRNN(VRNNConfig(latent_dim=1, state_dim=8, hidden=8), (t, d))
    grid = torch.tensor([[(i >> j) & 1 for j in range(t * d)] for i in range(2 ** (t * d))])
    x = grid.float().reshape(-1, t, d)  # all 16 sequences
    with torch.no_grad():
        p = iwae(model, x, k=20000, chunk=5000).exp()  # the mean weight: unbiased for p(x)
    assert p.sum().item() == pytest.approx(1.0, abs=0.03)
