"""Every registered model: shapes, gradients, sampling; and the neural models' likelihood options."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from aevb import runs
from aevb.errors import AevbError
from aevb.models import registry
from aevb.objectives import elbo
from aevb.runs import build_config

B, K, D, C = 6, 3, 784, 10


def small(name):
    """A small instance of a registered model, with data of the right kind for its likelihood."""
    cls = registry.get(name)
    cfg = cls.Config()
    if hasattr(cfg, "hidden"):
        cfg = dataclasses.replace(cfg, hidden=32)
    d = 3 if name == "fa" else D
    if name == "fa":
        cfg = dataclasses.replace(cfg, learn_mean=True)
    shape = (4, 7) if cls.sequential else (d,)  # sequences: T = 4 steps of 7 values
    model = cls(cfg, shape, C)
    support = cls.data_support(cfg)
    x = torch.randn(B, *shape) if support == "real" else torch.rand(B, *shape)
    if support == "binary":
        x = (x > 0.5).float()
    y = torch.arange(B) % C if cls.uses_labels else None
    return model, x, y


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_terms_shapes_and_gradients(name):
    model, x, y = small(name)
    t = model.terms(x, y, K)
    for v in (t.log_px, t.log_pz, t.log_qz):  # (K, B), or (K, C, B) with a summed-out y
        assert v.shape[0] == K and v.shape[-1] == B and torch.isfinite(v).all()
    assert t.kl is None or t.kl.shape[-1] == B
    assert elbo(t).shape == (B,)
    (-elbo(t).mean()).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} gets no gradient"


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_sample_and_encode_shapes(name):
    model, x, y = small(name)
    model.eval()
    assert model.sample(5).shape == (5, *x.shape[1:])
    if model.sequential:  # per-step posteriors, concatenated
        assert model.posterior_mean(x, y).shape == (B, x.shape[1] * model.cfg.latent_dim)
        return
    q = model.posterior(x, y)
    assert q.batch_shape[-1] == B and q.event_shape == (model.cfg.latent_dim,)
    assert model.posterior_mean(x, y).shape == (B, model.cfg.latent_dim)


@pytest.mark.parametrize("likelihood", ["continuous-bernoulli", "bernoulli", "gaussian"])
def test_vae_likelihood_options(likelihood):
    model = registry.get("vae")(registry.get("vae").Config(likelihood=likelihood, hidden=16), (D,))
    px = model.likelihood(torch.randn(K, B, model.cfg.latent_dim))
    assert px.batch_shape == (K, B) and px.event_shape == (D,)


def test_continuous_bernoulli_is_finite_near_0_half_and_1():
    """The CB normaliser C(lambda) is singular-looking at 0.5 and steep near 0 and 1."""
    from aevb.models.nets import LikelihoodHead

    head = LikelihoodHead(1, 4, "continuous-bernoulli")
    with torch.no_grad():
        head.out.weight.zero_()
        for logit in (-30.0, -1e-4, 0.0, 1e-4, 30.0):  # sigmoid near 0, 0.5, 0.5, 0.5, 1
            head.out.bias.fill_(logit)
            lp = head(torch.zeros(1, 1)).log_prob(torch.tensor([[0.0, 0.25, 0.75, 1.0]]))
            assert torch.isfinite(lp).all(), logit
    # at lambda = 0.5 the CB is uniform on [0,1]: its log-density is exactly 0
    head.out.bias.data.fill_(0.0)
    assert head(torch.zeros(1, 1)).log_prob(torch.full((1, 4), 0.3)).abs().max() < 1e-5


def test_relu_dropout_is_a_relu_then_a_dropout():
    """One module, the same numbers: the same masks under a seed, the same gradient, and in eval
    mode a plain ReLU."""
    from aevb.models.nets import ReLUDropout

    y = torch.randn(64, 300, requires_grad=True)
    y.data[0, :10] = 0.0  # relu'(0) = 0, as torch's ReLU has it
    torch.manual_seed(3)
    apart = torch.nn.Dropout(0.3)(torch.relu(y))
    (g_apart,) = torch.autograd.grad(apart.pow(2).sum(), y)
    fused = ReLUDropout(0.3)
    torch.manual_seed(3)
    together = fused(y)
    (g_together,) = torch.autograd.grad(together.pow(2).sum(), y)
    assert torch.equal(together, apart) and torch.equal(g_together, g_apart)
    dropped = ((together == 0) & (y > 0)).sum() / (y > 0).sum()
    assert 0.27 < dropped < 0.33  # p = 0.3 of the units that the ReLU lets through
    fused.eval()
    assert torch.equal(fused(y), torch.relu(y))


@pytest.mark.parametrize("dropout", [0.1, 0.0])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mlp_names_its_layers_as_separate_modules_did(dropout, activation):
    """Models saved when the ReLU and the dropout were two modules load into today's mlp."""
    from torch import nn

    from aevb.models.nets import ACTIVATIONS, mlp

    separate = []
    for i in range(3):
        separate += [nn.Linear(7 if i == 0 else 5, 5), ACTIVATIONS[activation]()]
        if dropout > 0:
            separate.append(nn.Dropout(dropout))
    saved = nn.Sequential(*separate).state_dict()
    net = mlp(7, 5, 3, dropout, activation)
    net.load_state_dict(saved)  # strict: the same names and shapes
    net.eval()
    x = torch.randn(4, 7)
    assert torch.equal(net(x), nn.Sequential(*separate).eval()(x))


def test_cvae_prior_depends_on_the_label():
    model, _, _ = small("cvae")
    with torch.no_grad():
        model.p_z.mean.weight.normal_()
    p0, p1 = model.prior(torch.tensor([0])), model.prior(torch.tensor([1]))
    assert not torch.allclose(p0.mean, p1.mean)
    model.zero_grad()
    x = torch.rand(B, D)
    y = torch.arange(B) % C
    (-elbo(model.terms(x, y, 2)).mean()).backward()
    assert model.p_z.mean.weight.grad[:, :B].abs().sum(0).gt(0).all()  # each seen label learns


def test_cvae_standard_prior_is_the_same_for_every_label_and_learns_nothing():
    cls = registry.get("cvae")
    model = cls(dataclasses.replace(cls.Config(), hidden=32, prior="standard"), (D,), C)
    p = model.prior(torch.tensor([0, 3, 9]))
    assert p.batch_shape == (3,) and p.event_shape == (model.cfg.latent_dim,)
    assert torch.equal(p.mean, torch.zeros_like(p.mean)) and torch.equal(p.stddev, torch.ones_like(p.stddev))
    assert not any(name.startswith("p_z") for name, _ in model.named_parameters())
    x, y = torch.rand(B, D), torch.arange(B) % C
    terms = model.terms(x, y, 2)
    assert terms.kl is not None and torch.isfinite(elbo(terms)).all()  # the KL stays analytic
    assert model.sample(4, torch.tensor([1, 2, 3, 4])).shape == (4, D)


def test_cvae_mixture_prior_is_learned_per_label_with_a_monte_carlo_kl():
    cls = registry.get("cvae")
    model = cls(dataclasses.replace(cls.Config(), hidden=32, prior="mixture", prior_components=3), (D,), C)
    p = model.prior(torch.tensor([0, 3]))
    assert p.batch_shape == (2,) and p.event_shape == (model.cfg.latent_dim,)
    assert not torch.allclose(p.mean[0], p.mean[1])  # each label its own components
    x, y = torch.rand(B, D), torch.arange(B) % C
    terms = model.terms(x, y, 2)
    assert terms.kl is None  # no closed form for a mixture: the ELBO estimates it from the draws
    (-elbo(terms).mean()).backward()
    seen = model.pz_means.grad.abs().sum((1, 2))
    assert seen[:B].gt(0).all() and seen[B:].eq(0).all()  # only the batch's labels learn
    assert model.sample(4, torch.tensor([1, 2, 3, 4])).shape == (4, D)


def test_cvae_fitted_prior_is_each_labels_mixture_fitted_to_its_codes():
    """EM's M-step makes a mixture's mean the mean of the points it was fitted to, so each label's
    p(z|y) is centred on that label's codes; training still learns against the Gaussian p(z|y)."""
    from aevb.config import TrainConfig
    from aevb.data.containers import Data, Split

    cls = registry.get("cvae")
    model = cls(dataclasses.replace(cls.Config(), hidden=16, latent_dim=2, prior="fitted",
                                    prior_components=2), (D,), C).eval()
    y = torch.arange(400) % C
    x = torch.rand(400, D) * 0.2 + y[:, None] / C  # each label its own pixels, so its own codes
    data = Data("toy", Split(x, y), Split(x[:20], y[:20]))
    model.prepare(data, TrainConfig(seed=0))
    assert isinstance(model.prior(y[:3]).base_dist, torch.distributions.Normal)  # not fitted yet
    model.after_epoch(data, TrainConfig(seed=0), 1)
    with torch.no_grad():
        codes = model.posterior(x, y).mean
    means = model.prior(torch.arange(C)).mean  # (C, Dz)
    for label in range(C):  # one draw of q per image, 40 images: within a few q stds / sqrt(40)
        assert torch.allclose(means[label], codes[y == label].mean(0), atol=0.4), label
    assert torch.cdist(means, means).add(torch.eye(C) * 9).min() > 0.01  # labels differ
    before = model.pz_loc.clone()
    model.after_epoch(data, TrainConfig(seed=0), 2)  # EM again, from the mixture just fitted
    assert not torch.equal(before, model.pz_loc)  # a fresh draw of the codes each epoch
    assert torch.allclose(model.prior(torch.arange(C)).mean, means, atol=0.4)
    terms = model.terms(x[:B], y[:B], 2)
    assert terms.kl is None and torch.isfinite(elbo(terms)).all()  # the KL by Monte Carlo
    assert model.train().terms(x[:B], y[:B], 2).kl is not None  # training: the learned Gaussian
    assert {"pz_loc", "pz_tril", "pz_log_weights", "pz_fitted"} <= set(model.state_dict())
    assert model.eval().sample(4, torch.tensor([1, 2, 3, 4])).shape == (4, D)
    # evaluate reports the networks alone too: the ELBO under the Gaussian they trained against
    from aevb.evaluate import evaluate, per_datapoint

    inside = Data("toy", Split(x, y), Split(x[:20].clamp(max=1), y[:20]))  # pixels in [0, 1]
    found = evaluate(model, inside, elbo_samples=3)
    assert model.has_fitted_prior and bool(model.pz_fitted)  # the block put the fitted prior back
    with model.trained_prior():
        assert isinstance(model.prior(y[:3]).base_dist, torch.distributions.Normal)
        alone = per_datapoint(model, inside, elbo_samples=3)["elbo"].double().mean().item()
    assert found["elbo_trained_prior"] == pytest.approx(alone)
    assert found["elbo"] != found["elbo_trained_prior"]
    few = Data("toy", Split(x[:15], y[:15]), Split(x[:5], y[:5]))
    with pytest.raises(AevbError, match="label 5 has 1; lower --prior-components"):
        model.prepare(few, TrainConfig(seed=0))


def test_em_step_raises_the_likelihood_and_keeps_the_data_mean():
    from aevb.models.cvae import em_step, kmeans_start

    torch.manual_seed(0)
    z = torch.cat([torch.randn(300, 3) * 0.3 - 2, torch.randn(200, 3) + 2]).double()  # two blobs
    mixture = kmeans_start(z, 2, seed=0)
    scores = []
    for _ in range(5):
        mixture = em_step(z, *mixture)
        loc, tril, log_w = mixture
        mix = torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(logits=log_w),
            torch.distributions.MultivariateNormal(loc, scale_tril=tril))
        scores.append(mix.log_prob(z).mean().item())
        assert torch.allclose(mix.mean, z.mean(0))  # every M-step keeps the points' mean
    assert all(b >= a - 1e-9 for a, b in zip(scores, scores[1:], strict=False))  # EM never goes down
    assert sorted(log_w.exp().tolist()) == pytest.approx([0.4, 0.6], abs=1e-3)


def cfg_for(name, dataset, preprocess=None, **model_config):
    data = {"dataset": str(dataset), **({"preprocess": preprocess} if preprocess else {})}
    return build_config(name, [("t", {"data": data, "model_config": model_config})])


def test_likelihood_that_does_not_fit_the_data_is_refused():
    cfg = cfg_for("vae", "mnist-sample", likelihood="bernoulli")  # the recipe dequantizes
    with pytest.raises(AevbError, match="needs binary data"):
        runs.prepare_data(cfg)
    runs.prepare_data(cfg_for("vae", "mnist-sample", "binarize-dynamic", likelihood="bernoulli"))


def test_unit_likelihood_refuses_real_valued_user_data(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.random.randn(20, 5), x_test=np.random.randn(5, 5))
    with pytest.raises(AevbError, match="needs \\[0, 1\\]"):
        runs.prepare_data(cfg_for("vae", path, "none"))
    runs.prepare_data(cfg_for("vae", path, "none", likelihood="gaussian"))


def test_cvae_without_labels_is_refused(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.random.rand(20, 5), x_test=np.random.rand(5, 5))
    with pytest.raises(AevbError, match="conditioned on labels"):
        runs.prepare_data(cfg_for("cvae", path, "none"))


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_iwae_is_above_the_elbo_of_the_same_draws(name):
    """Jensen, draw by draw: log mean_k w_k >= mean_k log w_k for every datapoint, and for a
    summed-out y also inside each draw (the GMVAE's ELBO averages over q(y|x), its weight sums)."""
    from aevb.objectives import iwae, log_weights

    model, x, y = small(name)
    model.eval()
    with torch.no_grad():
        t = model.terms(x, y, 50)
        iw = torch.logsumexp(log_weights(t), 0) - math.log(50)
        assert iwae(model, x, y, 50).shape == iw.shape == (B,)
    assert (iw >= elbo(t, analytic_kl=False) - 1e-4).all()


@pytest.mark.parametrize("name", sorted(set(registry.MODELS) - {"fa"}))  # FA: exact, test_objectives
def test_iwae_grows_with_k_on_average(name):
    """ELBO <= E[IWAE_1] <= E[IWAE_10] <= E[IWAE_100] (Burda et al., Theorem 1), each the mean
    over the batch and 20 repeats; with an untrained q the gaps are nats, far above the noise.
    (E[IWAE_1] is the ELBO itself, or above it where y is summed inside the log.)"""
    from aevb.objectives import iwae

    model, x, y = small(name)
    model.eval()
    with torch.no_grad():
        means = [torch.stack([iwae(model, x, y, k) for _ in range(20)]).mean().item()
                 for k in (1, 10, 100)]
        elbo_mean = torch.stack([elbo(model.terms(x, y, 100)) for _ in range(5)]).mean().item()
    assert elbo_mean < means[0] + 0.1 * (means[2] - means[0]) < means[1] < means[2], (elbo_mean, means)


def test_cvae_fitted_prior_run_resumes_to_where_an_uninterrupted_run_ends(tmp_path):
    """The mixtures are refitted after each epoch from a generator of their own and saved with the
    checkpoint, so a run stopped mid-epoch resumes bit for bit."""
    def cfg(**train):
        return build_config("cvae", [("t", {"data": {"dataset": "mnist-sample"},
                                            "model_config": {"hidden": 32, "prior": "fitted",
                                                             "prior_components": 2},
                                            "train": {"epochs": 2, "compile": False, **train}})])

    whole = runs.train(cfg(), tmp_path / "whole", quiet=True)
    runs.train(cfg(max_steps=70), tmp_path / "split", quiet=True)  # epoch 2, batch 20
    resumed = runs.resume(tmp_path / "split", {"max_steps": None}, quiet=True)
    for name, p in whole.model.state_dict().items():
        assert torch.equal(p, resumed.model.state_dict()[name]), name
    assert whole.metrics[-1]["test_elbo"] == resumed.metrics[-1]["test_elbo"]


def test_the_vaes_output_bias_starts_at_the_datas_mean_when_training_starts(tmp_path, monkeypatch):
    """--output-bias data (the vae-bernoulli recipe): `prepare` sets the decoder's output bias to
    the logit of the mean training pixel, and `aevb train` calls it before the first step."""
    from aevb.cli import main
    from aevb.runs import build_config, build_model, data_info, prepare_data

    data_cfg = {"dataset": "mnist-sample", "preprocess": "binarize-threshold"}
    model_cfg = {"likelihood": "bernoulli", "output_bias": "data", "hidden": 8}
    cfg = build_config("vae", [("test", {"data": data_cfg, "model_config": model_cfg})])
    data = prepare_data(cfg)
    model = build_model(cfg, data_info(data))
    model.prepare(data, cfg.train)
    from aevb.data import preprocess

    mean = preprocess(data.train.x, "binarize-threshold").mean(0)  # (784,) the mean binary pixel
    torch.testing.assert_close(model.px_head.out.bias, torch.logit(mean.clamp(1e-3, 1 - 1e-3)))
    called = []
    monkeypatch.setattr(type(model), "prepare", lambda self, d, t: called.append(self.cfg.output_bias))
    assert main(["train", "vae", "--dataset", "mnist-sample", "--output-bias", "data", "--hidden", "8",
                 "--max-steps", "1", "--quiet", "--out", str(tmp_path / "run")]) == 0
    assert called == ["data"]
