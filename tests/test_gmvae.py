"""The GMVAE's summed-out y against brute force, and its bounds against a closed-form mixture."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from aevb import clustering
from aevb.data import Data, Split
from aevb.evaluate import cluster_metrics, evaluate
from aevb.models.gmvae import GMVAE, GMVAEConfig
from aevb.models.nets import LikelihoodHead
from aevb.objectives import component_elbos, elbo, iwae

C, B, D, DZ = 4, 8, 12, 3


def small_gmvae(likelihood="bernoulli"):
    torch.manual_seed(0)
    return GMVAE(GMVAEConfig(components=C, latent_dim=DZ, hidden=16, likelihood=likelihood), (D,))


def test_enumerated_elbo_equals_brute_force_loop_over_y():
    """sum_y q(y|x)[E log p(x|z) - KL(q(z|x,y) || p(z|y)) + log p(y) - log q(y|x)], one y at a time,
    with q(z|x,y) computed the plain way from the concatenation [x, one-hot y]."""
    model = small_gmvae()
    x = (torch.rand(B, D) > 0.5).float()
    k = 5
    torch.manual_seed(1)
    enumerated = elbo(model.terms(x, k=k))  # (B,)

    torch.manual_seed(1)
    eps = torch.randn(k, C, B, DZ)  # the same noise that terms() drew for its rsample
    qy = torch.softmax(model.qy(x), -1)  # (B, C)
    first = nn.Linear(D + C, 16)  # the first layer of q(z|x,y) as one matrix on [x, y]
    with torch.no_grad():
        first.weight.copy_(torch.cat([model.qz_x.weight, model.qz_y.weight], 1))
        first.bias.copy_(model.qz_x.bias)
    brute = torch.zeros(B)
    for y in range(C):
        onehot = torch.zeros(B, C)
        onehot[:, y] = 1
        h = model.qz_rest(torch.relu(first(torch.cat([x, onehot], 1))))
        q = Independent(Normal(model.qz_head.mean(h),
                               nn.functional.softplus(model.qz_head.std(h)) + 1e-6), 1)
        p = model.prior(torch.full((B,), y))
        z = q.mean + q.base_dist.scale * eps[:, y]  # (K, B, DZ)
        expected_log_px = model.likelihood(z).log_prob(x).mean(0)
        elbo_y = expected_log_px - kl_divergence(q, p) + math.log(1 / C)
        brute += qy[:, y] * (elbo_y - qy[:, y].log())
    torch.testing.assert_close(enumerated, brute, atol=1e-4, rtol=1e-5)


def mixture_of_factor_analysers():
    """A GMVAE whose decoder is linear-Gaussian: p(x | y) is Gaussian, so p(x) is exact."""
    model = small_gmvae("gaussian")
    model.decoder = nn.Sequential()
    model.px_head = LikelihoodHead(DZ, D, "gaussian")
    with torch.no_grad():
        model.px_head.log_std.fill_(-0.7)
        model.pz_y.mean.weight.mul_(3.0)  # separate the components
    # fit q(y|x) q(z|x,y) roughly to this model, so the bounds are near enough to converge
    inference = [p for n, p in model.named_parameters() if n.startswith(("qy", "qz_"))]
    opt = torch.optim.Adam(inference, lr=1e-2)
    for _ in range(300):
        x = model.sample(128)
        loss = -elbo(model.terms(x, k=1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def exact_log_prob(model, x):
    """log sum_y p(y) N(x; W mu_y + b, W Sigma_y W^T + Psi)."""
    w, b = model.px_head.out.weight, model.px_head.out.bias  # (D, DZ), (D,)
    psi = torch.diag(model.px_head.log_std.exp() ** 2)
    parts = []
    for y in range(C):
        pz = model.prior(torch.tensor([y]))
        mu, var = pz.mean[0], pz.base_dist.scale[0] ** 2
        marg = MultivariateNormal(w @ mu + b, covariance_matrix=w @ torch.diag(var) @ w.T + psi)
        parts.append(marg.log_prob(x) - math.log(C))
    return torch.logsumexp(torch.stack(parts), 0)


def test_bounds_against_exact_mixture_of_factor_analysers():
    model = mixture_of_factor_analysers()
    with torch.no_grad():
        c = torch.randint(C, (256,))
        x = model.sample(256, c)
        exact = exact_log_prob(model, x)
        lower = elbo(model.terms(x, k=200))
        gaps = [exact - iwae(model, x, k=k, chunk=500) for k in (1, 10, 2000)]
    means = [g.mean().item() for g in gaps]
    ses = [g.std().item() / 256 ** 0.5 for g in gaps]
    assert (exact - lower).mean() > means[0] - 3 * ses[0]  # ELBO <= IWAE_1 (in expectation)
    assert lower.mean() < exact.mean()
    assert means[0] > 0.5, means  # q is far enough from exact for the trend to show
    assert means[1] < means[0] - 3 * (ses[0] + ses[1]), means  # the bound tightens with K
    assert means[2] < means[1] - 3 * (ses[1] + ses[2]), means
    assert -3 * ses[2] < means[2] < 0.1 * means[0], means  # and closes on log p(x)


@pytest.mark.parametrize("k", [1, 3])
def test_terms_carry_a_component_axis(k):
    model = small_gmvae()
    x = (torch.rand(B, D) > 0.5).float()
    t = model.terms(x, k=k)
    assert t.log_px.shape == t.log_pz.shape == t.log_qz.shape == (k, C, B)
    assert t.kl.shape == t.log_qy.shape == (C, B)
    torch.testing.assert_close(t.log_qy.exp().sum(0), torch.ones(B))
    assert model.sample(7).shape == (7, D)
    assert model.sample(3, torch.tensor([0, 1, 2]), mode="param").shape == (3, D)


def test_hungarian_accuracy_on_a_hand_made_permuted_labelling():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    # cluster 2 holds the 0s, cluster 0 the 1s, cluster 1 the 2s; two points are misplaced
    clusters = np.array([2, 2, 0, 0, 0, 0, 1, 1, 1, 2])
    np.testing.assert_array_equal(clustering.match(clusters, labels, 3, 3), [1, 2, 0])
    assert clustering.accuracy(clusters, labels, 3, 3) == pytest.approx(8 / 10)
    # a pure relabelling is perfect, and so is its NMI
    perm = np.array([4, 2, 0, 1, 3])
    y = np.repeat(np.arange(5), 7)
    assert clustering.accuracy(perm[y], y, 5, 5) == 1.0
    assert clustering.nmi(perm[y], y) == pytest.approx(1.0)
    # everything in one cluster: only the largest label counts, and NMI is 0
    assert clustering.accuracy(np.zeros_like(labels), labels, 3, 3) == pytest.approx(4 / 10)
    assert clustering.nmi(np.zeros_like(labels), labels) == pytest.approx(0.0)


def test_hungarian_matching_is_one_to_one_with_more_clusters_than_labels():
    labels = np.array([0, 0, 0, 0, 1, 1])
    clusters = np.array([0, 0, 1, 1, 2, 2])  # label 0 split over clusters 0 and 1
    label_of = clustering.match(clusters, labels, 3, 2)
    assert sorted(label_of.tolist()) == [-1, 0, 1] and label_of[2] == 1
    assert clustering.accuracy(clusters, labels, 3, 2) == pytest.approx(4 / 6)  # a greedy map: 1.0


def test_purity_lets_clusters_share_a_label_and_is_never_below_accuracy():
    labels = np.array([0, 0, 0, 0, 1, 1])
    clusters = np.array([0, 0, 1, 1, 2, 2])  # label 0 split over clusters 0 and 1
    assert clustering.purity(clusters, labels, 3, 2) == 1.0  # Hungarian: 4/6, above
    # two labels merged in one cluster and another label split over two: each cluster takes its
    # most frequent label, so the merged cluster counts only its larger label
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    clusters = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2])
    assert clustering.purity(clusters, labels, 3, 3) == pytest.approx(8 / 10)
    assert clustering.accuracy(clusters, labels, 3, 3) == pytest.approx(6 / 10)
    rng = np.random.default_rng(0)
    for _ in range(20):
        y, c = rng.integers(0, 4, 30), rng.integers(0, 4, 30)
        assert clustering.purity(c, y, 4, 4) >= clustering.accuracy(c, y, 4, 4)


def test_cluster_metrics_come_from_q_y_given_x():
    model = small_gmvae()
    x = (torch.rand(50, D) > 0.5).float()
    data = Data("toy", Split(x, torch.arange(50) % 3), Split(x, torch.arange(50) % 3),
                classes=("a", "b", "c"))
    found = cluster_metrics(model, data)
    q = model.cluster_log_probs(x).exp()
    assigned = q.argmax(1).numpy()
    assert found["cluster_accuracy"] == clustering.accuracy(assigned, data.test.y.numpy(), C, 3)
    assert found["cluster_purity"] == clustering.purity(assigned, data.test.y.numpy(), C, 3)
    assert found["qy_entropy"] == pytest.approx(-(q * q.log()).sum(1).mean().item(), rel=1e-5)
    assert 0 <= found["nmi"] <= 1


def test_the_elbo_is_the_q_weighted_mean_of_the_component_elbos_and_at_most_their_logsumexp():
    model = small_gmvae()
    x = (torch.rand(B, D) > 0.5).float()
    t = model.terms(x, k=2)
    per = component_elbos(t)  # (C, B)
    q = t.log_qy.exp()
    torch.testing.assert_close(elbo(t), (q * (per - t.log_qy)).sum(0))
    # with q(y|x) = softmax_y ELBO_y the bound reaches logsumexp_y ELBO_y, and no q does better
    assert (torch.logsumexp(per, 0) >= elbo(t) - 1e-5).all()


def test_evaluate_reports_the_elbos_own_clusters_beside_q_y_given_x():
    model = small_gmvae()
    x = (torch.rand(60, D) > 0.5).float()
    y = torch.arange(60) % 3
    data = Data("toy", Split(x, y), Split(x, y), classes=("a", "b", "c"))
    found = evaluate(model, data, elbo_samples=4, batch_size=25)  # three batches, one short
    torch.manual_seed(0)
    with torch.no_grad():  # the same draws as evaluate's (seed 0), batch by batch
        per = torch.cat([component_elbos(model.terms(x[i:i + 25], k=4)).T for i in range(0, 60, 25)])
    by_elbo, by_q = per.argmax(1), model.cluster_log_probs(x).argmax(1)
    assert found["elbo_cluster_accuracy"] == clustering.accuracy(by_elbo.numpy(), y.numpy(), C, 3)
    assert found["elbo_cluster_purity"] == clustering.purity(by_elbo.numpy(), y.numpy(), C, 3)
    assert found["cluster_agreement"] == pytest.approx((by_elbo == by_q).double().mean().item())
    gap = torch.logsumexp(per.double(), 1).mean().item() - found["elbo"]
    assert found["qy_elbo_gap"] == pytest.approx(gap, abs=1e-4) and found["qy_elbo_gap"] >= 0
    # an untrained q(y|x) is near uniform, so the bound's own choice disagrees with it somewhere
    assert found["cluster_agreement"] < 1 and found["qy_elbo_gap"] > 0
