"""aevb.compiling: inductor's instruction-set check runs once per machine and its outcome is reused."""

import json
import platform
import sys

import pytest
from torch._inductor import config, cpu_vec_isa
from torch._inductor.runtime import cache_dir_utils

from aevb.runtime import compiling

VEC_ISA_OK = config.cpp.vec_isa_ok  # as this process started (TORCHINDUCTOR_VEC_ISA_OK sets it)

pytestmark = pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64",
                                reason="inductor checks instruction sets this way on x86-64 Linux only")


@pytest.fixture
def check(monkeypatch, tmp_path):
    """Inductor's check replaced by one that counts its calls, on a CPU that reports AVX2 and
    AVX-512; the record goes to tmp_path. Set `check.usable` to what the check finds."""

    class Check:
        calls = 0
        usable = [cpu_vec_isa.VecAVX512(), cpu_vec_isa.VecAVX2()]

        def __call__(self):
            self.calls += 1
            return self.usable

    fake = Check()
    monkeypatch.setattr(cpu_vec_isa, "x86_isa_checker", lambda: ["avx2", "avx512"])
    monkeypatch.setattr(cpu_vec_isa, "valid_vec_isa_list", fake)
    monkeypatch.setattr(cache_dir_utils, "cache_dir", lambda: str(tmp_path / "inductor"))
    fake.record = tmp_path / "inductor" / compiling.RECORD
    # inductor's options through its own `patch`: from pytest 9.2, monkeypatch undoes a setattr on
    # an object whose instance __dict__ lacks the name by deleting it, and deleting a torch config
    # option removes it for the rest of the process (every later compile then fails)
    with config.patch({"cpp.vec_isa_ok": None}):
        yield fake


def test_the_check_runs_once_and_its_outcome_is_reused(check):
    assert compiling.isa_options() == {"cpp.vec_isa_ok": True}
    assert compiling.isa_options() == {"cpp.vec_isa_ok": True}
    assert check.calls == 1
    assert json.loads(check.record.read_text())["all_usable"] is True


def test_a_set_that_failed_the_check_keeps_inductors_own_check(check):
    check.usable = [cpu_vec_isa.VecAVX2()]  # the CPU reports AVX-512, but it did not build or load
    assert compiling.isa_options() == {}
    assert compiling.isa_options() == {}
    assert check.calls == 1  # the failure is remembered too; inductor then checks every time


@pytest.mark.parametrize("text", ["{not json", "[]", '{"key": {"torch": "0.1"}, "all_usable": true}'])
def test_a_corrupt_or_foreign_record_is_checked_again(check, text):
    check.record.parent.mkdir(parents=True)
    check.record.write_text(text)
    assert compiling.isa_options() == {"cpp.vec_isa_ok": True}
    assert check.calls == 1
    assert json.loads(check.record.read_text())["key"]["cpu"] == ["avx2", "avx512"]


def test_the_environment_variable_wins(check):
    with config.patch({"cpp.vec_isa_ok": False}):  # TORCHINDUCTOR_VEC_ISA_OK=0
        assert compiling.isa_options() == {}
    assert check.calls == 0 and not check.record.exists()


def test_an_unusable_cache_folder_still_answers(check):
    check.record.parent.write_text("")  # a file where the folder should be: nothing can be written
    assert compiling.isa_options() == {"cpp.vec_isa_ok": True}
    assert compiling.isa_options() == {"cpp.vec_isa_ok": True}
    assert check.calls == 2  # nothing was recorded, so the check runs again


def test_the_fixture_leaves_inductors_option_in_place():
    """Runs after the tests above: their patches are undone, and the option is still there."""
    assert config.cpp.vec_isa_ok is VEC_ISA_OK
