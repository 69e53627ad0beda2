"""Shared fixtures.

The tests do not depend on the machine: "auto" training precision means float32 here
(tests of bfloat16 ask for it), and a sweep runs its runs in this process (tests of
side-by-side workers ask for them).
"""

import os

import pytest
import torch

from test_data import write_image_folder

# tests/cluster needs a Slurm: `make test-cluster` brings one up and runs it (where it must
# fail, not skip, under $CI); `pytest tests` does not collect it.
collect_ignore = ["cluster"]

os.environ["SYNFLOW_TRAIN_PRECISION"] = "float32"
os.environ["SYNFLOW_WORKERS"] = "1"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A tiny grayscale image-folder dataset "blobs" as the data root; results and
    cache in tmp_path, progress bars off."""
    monkeypatch.setenv("SYNFLOW_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SYNFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SYNFLOW_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("SYNFLOW_QUIET", "1")
    write_image_folder(tmp_path / "data" / "blobs", ["a", "b", "c"], shape=(1, 8, 8), train=8, test=4)
    return tmp_path


DEVICE_VARIABLE = "SYNFLOW_TEST_DEVICE"


@pytest.fixture
def device():
    """The device of the device-independent tests (tests/test_on_device.py):
    $SYNFLOW_TEST_DEVICE (e.g. "cuda"), default "cpu". Asking for a device that is not
    there fails (never skips)."""
    name = os.environ.get(DEVICE_VARIABLE, "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        pytest.fail(f"${DEVICE_VARIABLE}={name!r} but torch sees no CUDA device")
    return device
