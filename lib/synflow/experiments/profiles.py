"""The notebooks' parameter profiles, shipped in the package: one loader for all of them.

``synflow/experiments/profiles/<profile>.yaml`` maps a notebook's file stem (e.g.
``04_accuracy_vs_compression``) to the values of its papermill parameters at that
profile: ``smoke`` (seconds, for CI), ``laptop`` (a 2-core CPU, the committed outputs),
``paper`` (the paper's scale, a GPU cluster). ``tools/run_notebooks.py`` injects these
sections into the notebooks, and ``python -m synflow launch`` builds the training
notebooks' runs from the same sections, so both agree; the library never reads
``notebooks/``.

>>> from synflow.experiments.profiles import load_profile
>>> load_profile("smoke")["04_accuracy_vs_compression"]["epochs"]
1
"""

from __future__ import annotations

from pathlib import Path

import yaml

PROFILES = ("smoke", "laptop", "paper")
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


def profile_path(profile: str) -> Path:
    """The YAML file of ``profile``. Raises ValueError naming it and the allowed ones.

    >>> profile_path("smoke").name
    'smoke.yaml'
    >>> profile_path("huge")
    Traceback (most recent call last):
    ValueError: profile 'huge' is not allowed; choose one of: smoke, laptop, paper
    """
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is not allowed; choose one of: {', '.join(PROFILES)}")
    return PROFILES_DIR / f"{profile}.yaml"


def load_profile(profile: str) -> dict[str, dict]:
    """``{notebook stem: {parameter: value}}`` of ``profile`` (an empty section is ``{}``).

    Raises ValueError for an unknown profile, or a file that does not map notebook
    names to mappings (naming the file and the section).

    >>> sorted(load_profile("smoke"))[:2]
    ['00_quickstart', '01_conservation']
    """
    path = profile_path(profile)
    content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(content, dict):  # a damaged file: ValueError, like every bad input
        raise ValueError(f"{path} must map notebook names to parameter mappings")  # noqa: TRY004
    for name, section in content.items():
        if section is not None and not isinstance(section, dict):
            raise ValueError(f"{path}: the section {name!r} must be a mapping, got {section!r}")
    return {name: section or {} for name, section in content.items()}


def section(notebook: str, profile: str) -> dict:
    """The parameters of ``notebook`` (a file stem, ``.ipynb`` allowed) at ``profile``.

    Raises ValueError naming the profile file when it has no section for the notebook.

    >>> section("05_iterative_magnitude_pruning.ipynb", "smoke")["cycles_list"]
    [1, 2, 3]
    """
    notebook = notebook.removesuffix(".ipynb")
    sections = load_profile(profile)
    if notebook not in sections:
        raise ValueError(f"{profile_path(profile)} has no section {notebook!r}; its notebooks: "
                         f"{', '.join(sections)}")
    return dict(sections[notebook])
