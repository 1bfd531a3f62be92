"""The command line as a new user meets it: what bare `aevb` and `--help` say, flags that are
never guessed, `--config` and `--print-config`, what a run and each command print, `aevb encode`."""

import json

import numpy as np
import pytest

from aevb.cli import main

SMALL = ["--dataset", "fa-synthetic", "--epochs", "2", "--batch-size", "200"]


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert e.value.code == 2 and out == "" and err.count("\n") == 1, err
    return err


def test_bare_aevb_lists_the_commands_and_an_example(capsys):
    code, out, _ = cli(capsys)
    assert code == 0
    for command in ("train", "evaluate", "sample", "encode", "figures", "reproduce", "sweep", "pretrained"):
        assert f"\n    {command}" in out, command
    assert "example:\n  aevb train vae" in out


def test_train_help_shows_the_options_every_model_shares(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--epochs" in out and "--dataset" in out and "--tensorboard" in out and "(default" not in out


@pytest.mark.parametrize("argv, suggestion", [
    (["train", "fa", "--epoch", "3"], "did you mean --epochs?"),
    (["train", "vae", "--latnt-dim", "3"], "did you mean --latent-dim?"),
    (["evaluate", "runs/x", "--iwae-sample", "5"], "did you mean --iwae-samples?"),
    (["evalute", "runs/x"], "did you mean evaluate?"),
    (["train", "vea"], "did you mean vae?"),
    (["reproduce", "vae-tutorial", "--overwrite"],
     "--overwrite is not an option of `aevb reproduce` (see its --help)"),
    (["train"], "required: MODEL (one of fa, vae, cvae, gmvae, vrnn)"),
])
def test_flags_are_never_abbreviated_and_a_typo_gets_the_closest(capsys, argv, suggestion):
    assert suggestion in usage_error(capsys, *argv)


def test_config_takes_a_recipe_name_a_toml_file_or_a_runs_config_json(tmp_path, capsys):
    code, by_name, _ = cli(capsys, "train", "fa", "--config", "fa-tutorial", "--print-config")
    assert code == 0 and 'model = "fa"' in by_name
    (tmp_path / "printed.toml").write_text(by_name)
    code, by_file, _ = cli(capsys, "train", "fa", "--config", tmp_path / "printed.toml", "--print-config")
    assert code == 0 and by_file == by_name
    assert cli(capsys, "train", "fa", *SMALL, "--out", tmp_path / "r", "--quiet")[0] == 0
    code, by_run, _ = cli(capsys, "train", "fa", "--config", tmp_path / "r" / "config.json", "--print-config")
    assert code == 0 and "epochs = 2" in by_run and "batch_size = 200" in by_run
    assert "unknown" not in by_run and not list(tmp_path.glob("runs*"))  # printing trains nothing


@pytest.mark.parametrize("value, match", [
    ("no-such-recipe", "no recipe 'no-such-recipe'; `aevb reproduce --list` shows"),
    ("missing.json", "config file missing.json does not exist"),
])
def test_a_bad_config_is_one_line(capsys, value, match):
    code, out, err = cli(capsys, "train", "fa", "--config", value, "--print-config")
    assert code == 2 and out == "" and match in err and err.count("\n") == 1


def test_a_run_says_how_it_starts_and_ends_and_quiet_silences_both(tmp_path, capsys):
    code, out, err = cli(capsys, "train", "fa", *SMALL, "--out", tmp_path / "r")
    assert code == 0
    assert "aevb: training fa on fa-synthetic (1,000 train, 1,000 test, 3 each) on cpu, fp32, eager" in err
    assert "fa finished at epoch 2, step 10, after " in err and "s of training: test ELBO" in err
    assert "nats per datapoint" in err
    assert f"aevb evaluate {tmp_path / 'r'}" in err and f"aevb figures {tmp_path / 'r'}" in err
    code, out, err = cli(capsys, "train", "fa", *SMALL, "--out", tmp_path / "q", "--quiet")
    assert code == 0 and out == "" and err == ""
    code, out, err = cli(capsys, "train", "fa", "--resume", "--out", tmp_path / "r", "--epochs", "3")
    assert "aevb: resuming from step 10: fa on" in err and "finished at epoch 3, step 15" in err


def test_sample_figures_and_encode_print_what_they_wrote(tmp_path, capsys):
    run = tmp_path / "r"
    assert cli(capsys, "train", "fa", *SMALL, "--out", run, "--quiet")[0] == 0
    code, out, _ = cli(capsys, "sample", run, "--n", 5, "--out", tmp_path / "s.npy")
    assert code == 0 and out == f"{tmp_path / 's.npy'}\n" and np.load(tmp_path / "s.npy").shape == (5, 3)
    code, out, _ = cli(capsys, "figures", run, "--out", tmp_path / "f")
    assert code == 0 and out and all((tmp_path / "f" / line.split("/")[-1]).is_file()
                                     for line in out.splitlines())
    for suffix in ("npy", "npz", "csv"):
        code, out, _ = cli(capsys, "encode", run, "--out", tmp_path / f"z.{suffix}")
        assert code == 0 and out == f"{tmp_path / f'z.{suffix}'} (z 1000x2)\n"
    z = np.load(tmp_path / "z.npy")
    assert z.shape == (1000, 2) and np.array_equal(np.load(tmp_path / "z.npz")["z"], z)
    csv = np.loadtxt(tmp_path / "z.csv", delimiter=",", skiprows=1)
    assert np.allclose(csv, z, rtol=1e-6, atol=1e-7)
    assert (tmp_path / "z.csv").read_text().splitlines()[0] == "z_0,z_1"
    code, _, err = cli(capsys, "encode", run, "--out", tmp_path / "z.txt")
    assert code == 2 and "unknown format '.txt'" in err and not (tmp_path / "z.txt").exists()
    code, _, err = cli(capsys, "encode", tmp_path / "nothing", "--out", tmp_path / "y.npy")
    assert code == 2 and "no checkpoint here" in err and not (tmp_path / "y.npy").exists()


def test_encode_of_a_model_with_clusters_writes_q_y_and_the_cluster(tmp_path, capsys):
    run = tmp_path / "g"
    args = ["--dataset", "mnist-sample", "--epochs", "1", "--batch-size", "100", "--init", "random",
            "--quiet"]
    assert cli(capsys, "train", "gmvae", *args, "--out", run)[0] == 0
    code, out, _ = cli(capsys, "encode", run, "--out", tmp_path / "g.npz", "--split", "train")
    with np.load(tmp_path / "g.npz") as f:
        z, q, cluster = f["z"], f["q_y"], f["cluster"]
    assert code == 0 and q.shape == (len(z), 10) and np.array_equal(cluster, q.argmax(1))
    assert np.allclose(q.sum(1), 1, atol=1e-5)


def test_evaluate_prints_a_table_with_units(tmp_path, capsys):
    run = tmp_path / "g"
    args = ["--dataset", "mnist-sample", "--epochs", "1", "--batch-size", "100", "--quiet"]
    assert cli(capsys, "train", "vae", *args, "--preprocess", "binarize-threshold", "--likelihood",
               "bernoulli", "--hidden", "32", "--out", run)[0] == 0
    code, out, _ = cli(capsys, "evaluate", run, "--iwae-samples", 3)
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("vae on ") and "nats/datapoint" in lines[1]
    assert "bits/dim" in lines[1]
    elbo = json.loads(cli(capsys, "evaluate", run, "--iwae-samples", 3, "--json")[1])["elbo"]
    row = next(line for line in lines if line.strip().startswith("ELBO")).split()
    assert float(row[1]) == pytest.approx(elbo, abs=1e-4)
    assert float(row[3]) == pytest.approx(-elbo / (784 * np.log(2)), abs=1e-4)
    assert any(line.strip().startswith("IWAE_3") for line in lines)
