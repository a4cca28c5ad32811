"""The IAM-OnDB dataset spec: provenance, configurations and the counts of the official release."""
from __future__ import annotations

from seqbench.data.base import DATASETS, DatasetSpec

# Counts of the official release (lineStrokes-all.tar.gz, ascii-all.tar.gz, the task split lists).
EXPECTED = {
    "line_files": 12195,
    "trainset": 5364,
    "testset_v": 1438,
    "testset_t": 1518,
    "testset_f": 3859,
    "unassigned": 16,
    "strokes": 303676,
    "points": 7656867,
}

SPEC = DATASETS.add(
    "iam-ondb",
    DatasetSpec(
        name="iam-ondb",
        # Bump whenever the bytes prepare writes change.
        version="1.0.0",
        description="IAM On-Line Handwriting Database: whiteboard pen trajectories of handwritten English "
        "text lines, with transcriptions.",
        homepage="https://fki.tic.heia-fr.ch/databases/iam-on-line-handwriting-database",
        license="Free for non-commercial research after registration with the FKI group (University of "
        "Bern); cite Liwicki & Bunke (2005). Not redistributable.",
        citation="M. Liwicki and H. Bunke. IAM-OnDB - an On-Line English Sentence Database Acquired from "
        "Handwritten Text on a Whiteboard. ICDAR 2005.",
        configs={
            "graves2013": ("train", "valid", "unassigned"),
            "official": ("train", "valid1", "valid2", "test", "unassigned"),
        },
        default_config="graves2013",
        prepare_command="seqbench prepare iam --source DIR",
        expected=EXPECTED,
    ),
)
