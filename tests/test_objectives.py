"""The estimators against closed forms, on factor analysis where every quantity is exact."""

import math

import pytest
import torch
from torch.distributions import kl_divergence

from aevb.models.base import Terms
from aevb.models.fa import FAConfig, FactorAnalysis
from aevb.objectives import bound, elbo, iwae, log_weights


@pytest.fixture
def fa_and_x():
    """An FA model whose q is the exact posterior, perturbed, and data drawn from the model."""
    torch.manual_seed(1)
    model = FactorAnalysis(FAConfig(latent_dim=2, learn_mean=True, init_scale=0.7), (4,))
    with torch.no_grad():
        model.s.fill_(-0.5)
        model.mu.normal_()
        w_psi = model.W.T / model.sigma**2
        cov = torch.linalg.inv(torch.eye(2) + w_psi @ model.W)  # exact posterior covariance
        model.V.copy_(cov @ w_psi * (1 + 0.5 * torch.randn(2, 4)))
        model.b.copy_(-model.V @ model.mu + 0.1)
        tril = torch.linalg.cholesky(cov) * 2.0
        raw = tril.clone()
        raw.diagonal().copy_(torch.log(torch.expm1(tril.diagonal())))  # inverse softplus
        model.L_raw.copy_(raw)
        x = model.sample(512)
    return model, x


def test_bounds_are_ordered(fa_and_x):
    model, x = fa_and_x
    with torch.no_grad():
        exact = model.exact_log_prob(x).mean()
        lower = elbo(model.terms(x, k=2000)).mean()
        iw = iwae(model, x, k=2000).mean()
    assert lower < iw < exact


def test_iwae_approaches_exact_log_prob(fa_and_x):
    model, x = fa_and_x
    exact = model.exact_log_prob(x)
    with torch.no_grad():
        gaps = [(exact - iwae(model, x, k=k)) for k in (1, 3, 10, 5000)]
    means = [g.mean().item() for g in gaps]
    ses = [g.std().item() / len(x) ** 0.5 for g in gaps]
    assert means[0] > 1.0  # q is far enough from the posterior for the trend to show
    for i in range(3):  # the bound tightens as K grows
        assert means[i + 1] < means[i] - 3 * (ses[i] + ses[i + 1]), means
    assert abs(means[3]) < max(3 * ses[3], 1e-3), means  # and closes on log p(x)


def test_elbo_gap_is_kl_to_exact_posterior(fa_and_x):
    """log p(x) - ELBO = KL(q(z|x) || p(z|x)) exactly, with both posteriors in closed form."""
    model, x = fa_and_x
    x = x[:64]
    with torch.no_grad():
        gap = model.exact_log_prob(x) - elbo(model.terms(x, k=200_000))
        kl = kl_divergence(model.posterior(x), model.exact_posterior(x))
    assert kl.mean() > 0.1  # the test would be empty if q were already exact
    torch.testing.assert_close(gap, kl, atol=0.02, rtol=0.02)


def test_exact_posterior_satisfies_bayes_rule(fa_and_x):
    """log p(x) = log p(x|z) + log p(z) - log p(z|x) at any z."""
    model, x = fa_and_x
    z = torch.randn(x.shape[0], 2)
    with torch.no_grad():
        rhs = (model.likelihood(z).log_prob(x) + model.prior().log_prob(z)
               - model.exact_posterior(x).log_prob(z))
    torch.testing.assert_close(rhs, model.exact_log_prob(x), atol=1e-4, rtol=1e-5)


def test_exact_log_prob_matches_scipy(fa_and_x):
    from scipy.stats import multivariate_normal

    model, x = fa_and_x
    with torch.no_grad():
        cov = (model.W @ model.W.T + torch.diag(model.sigma**2)).double().numpy()
        expected = multivariate_normal(model.mu.double().numpy(), cov).logpdf(x.double().numpy())
    torch.testing.assert_close(model.exact_log_prob(x).double(), torch.from_numpy(expected),
                               atol=1e-4, rtol=1e-5)


def test_analytic_and_monte_carlo_elbo_agree(fa_and_x):
    """Both estimate the same number; their difference is within 4 standard errors."""
    model, x = fa_and_x
    k = 4000
    with torch.no_grad():
        t = model.terms(x, k=k)
    analytic = elbo(t, analytic_kl=True)
    mc_draws = log_weights(t)  # (K, B)
    mc = mc_draws.mean(0)
    assert t.kl is not None and not torch.equal(analytic, mc)
    se = (mc_draws.var(0) / k).sqrt() + (t.log_px.var(0) / k).sqrt()
    assert ((analytic - mc).abs() < 4 * se).all()


class _TableModel:
    """A stand-in whose `iwae_terms` hands out precomputed log-weights in order."""

    def __init__(self, table):
        self.table, self.used = table, 0

    def iwae_terms(self, x, c=None, k=1):
        lw = self.table[self.used: self.used + k]
        self.used += k
        zero = torch.zeros_like(lw)
        return Terms(log_px=lw, log_pz=zero, log_qz=zero)


@pytest.mark.parametrize("chunk", [1, 7, 50, 1000])
def test_iwae_chunks_are_exact(chunk):
    """Chunked log-sum-exp equals the one-shot value, even with log-weights near -1e4."""
    table = torch.randn(50, 3, dtype=torch.float64) * 30 - 1e4
    expected = torch.logsumexp(table, 0) - math.log(50)
    got = iwae(_TableModel(table), torch.zeros(3, 1), k=50, chunk=chunk)
    torch.testing.assert_close(got, expected)


def test_elbo_has_gradients_for_every_parameter(fa_and_x):
    model, x = fa_and_x
    loss = -elbo(model.terms(x, k=3)).mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def exact_q(model):
    """Set FA's q(z|x) to its exact posterior p(z|x) (linear in x, with a shared covariance)."""
    with torch.no_grad():
        w_psi = model.W.T / model.sigma**2  # (Dz, D)
        cov = torch.linalg.inv(torch.eye(model.W.shape[1]) + w_psi @ model.W)
        model.V.copy_(cov @ w_psi)
        model.b.copy_(-model.V @ model.mu)
        tril = torch.linalg.cholesky(cov)
        raw = torch.tril(tril, -1)
        raw.diagonal().copy_(torch.log(torch.expm1(tril.diagonal())))  # inverse softplus
        model.L_raw.copy_(raw)


@pytest.mark.parametrize("k", [1, 5, 50])
def test_iwae_objective_is_log_p_x_when_q_is_the_exact_posterior(fa_and_x, k):
    """Every importance weight p(x, z_k) / p(z_k | x) is p(x), so IWAE_K = log p(x) for every K."""
    model, x = fa_and_x
    exact_q(model)
    with torch.no_grad():
        torch.testing.assert_close(bound(model.terms(x, k=k), "iwae"), model.exact_log_prob(x),
                                   atol=2e-4, rtol=1e-5)


def test_iwae_objective_with_one_draw_is_the_monte_carlo_elbo(fa_and_x):
    model, x = fa_and_x
    with torch.no_grad():
        t = model.terms(x, k=1)
        torch.testing.assert_close(bound(t, "iwae"), elbo(t, analytic_kl=False), atol=1e-5, rtol=0)
        assert not torch.allclose(bound(t, "iwae"), bound(t, "elbo"))  # the default KL is analytic


def test_iwae_gradient_vanishes_at_the_maximum_likelihood_fit():
    """At scikit-learn's maximum-likelihood parameters, with q the exact posterior, the gradient of
    the mean IWAE_K objective for p's parameters is the gradient of log p(x), zero, up to Monte
    Carlo error; away from it, it is the gradient of log p(x)."""
    from sklearn.decomposition import FactorAnalysis as SkFA

    torch.manual_seed(0)
    truth = FactorAnalysis(FAConfig(latent_dim=2, learn_mean=True, init_scale=1.0), (5,))
    x = truth.sample(4000).detach()
    sk = SkFA(2, tol=1e-10, max_iter=100_000, svd_method="lapack").fit(x.double().numpy())
    model = FactorAnalysis(FAConfig(latent_dim=2, learn_mean=True), (5,))
    with torch.no_grad():
        model.W.copy_(torch.as_tensor(sk.components_.T))
        model.s.copy_(torch.log(torch.expm1(torch.as_tensor(sk.noise_variance_).sqrt())))
        model.mu.copy_(torch.as_tensor(sk.mean_))

    def gradients():
        exact_q(model)
        params = model.generative_parameters()
        iw = torch.autograd.grad(bound(model.terms(x, k=50), "iwae").mean(), params)
        ex = torch.autograd.grad(model.exact_log_prob(x).mean(), params)
        return torch.cat([g.flatten() for g in iw]), torch.cat([g.flatten() for g in ex])

    at_mle, exact_at_mle = gradients()
    assert exact_at_mle.norm() < 1e-3  # scikit-learn's fit is the maximum
    with torch.no_grad():
        model.W.mul_(2.0)
    away, exact_away = gradients()
    assert exact_away.norm() > 0.1
    assert at_mle.norm() < 0.1 * exact_away.norm()  # zero within Monte Carlo error (0.04 measured)
    assert (away - exact_away).norm() < 0.1 * exact_away.norm()  # (0.02 measured)


def test_kl_warmup_weighs_every_term_but_the_reconstruction(fa_and_x):
    """beta = 1 is the ELBO; beta = 0 leaves E_q[log p(x|z)]; in between the prior
    terms scale linearly, in the analytic and the Monte Carlo form, and with a summed-out y."""
    model, x = fa_and_x
    with torch.no_grad():
        t = model.terms(x, k=3)
        one, zero, half = (torch.tensor(b) for b in (1.0, 0.0, 0.5))
        for analytic in (True, False):
            torch.testing.assert_close(elbo(t, analytic, beta=one), elbo(t, analytic))
            torch.testing.assert_close(elbo(t, analytic, beta=zero), t.log_px.mean(0))
            torch.testing.assert_close(elbo(t, analytic, beta=half),
                                       (elbo(t, analytic) + t.log_px.mean(0)) / 2)
        C = 4
        log_qy = torch.log_softmax(torch.randn(C, x.shape[0]), 0)
        ty = Terms(log_px=t.log_px[:, None].expand(-1, C, -1), log_pz=t.log_pz[:, None].expand(-1, C, -1),
                   log_qz=t.log_qz[:, None].expand(-1, C, -1), kl=None, log_qy=log_qy)
        recon = (log_qy.exp() * t.log_px.mean(0)).sum(0)
        torch.testing.assert_close(elbo(ty, beta=half), (elbo(ty) + recon) / 2)
        torch.testing.assert_close(bound(t, "elbo", beta=one), bound(t, "elbo"))


def test_kl_warmup_rises_linearly_over_its_epochs():
    from aevb.config import TrainConfig
    from aevb.training.step import TrainStep

    model = FactorAnalysis(FAConfig(latent_dim=2), (4,))
    step = TrainStep(model, TrainConfig(kl_warmup=2, compile=False), planned_steps=100, steps_per_epoch=10)
    x = torch.randn(8, 4)
    seen = []
    for n in (0, 5, 10, 19, 20, 50):
        step(x, None, n)
        seen.append(step.beta.item())
    assert seen == pytest.approx([0.0, 0.25, 0.5, 0.95, 1.0, 1.0])
    assert TrainStep(model, TrainConfig(), 100, 10).beta is None  # no warm-up: the plain ELBO
